"""Levenshtein distance inside jit, over padded int arrays (for CER and WER).

The dynamic programme d[i, j] (edits turning a[:i] into b[:j]) is scanned over the rows
i of `a`. Within a row, d[i, j] = min_k<=j (c[k] + j - k) where c[k] takes the deletion
and substitution moves from row i - 1, so the insertion chain along the row is one
cumulative minimum: j + cummin(c - j). Padding never reaches the answer, d[len_a,
len_b], because d[i, j] only depends on entries above and to its left.

Words are compared whole: `split_words` lays each word out as one padded row, and two
words match when their rows are equal, so WER is exact (no hashing).
"""

import jax
import jax.numpy as jnp


def levenshtein(mismatch_AxB, len_a, len_b):
    """Edit distance of a[:len_a] and b[:len_b], given mismatch[i, j] = (a[i] != b[j])."""
    num_b = mismatch_AxB.shape[1]
    j = jnp.arange(num_b + 1, dtype=jnp.int32)
    len_b = jnp.asarray(len_b, jnp.int32)

    def row(previous, inputs):
        i, mismatch_B = inputs
        moves = jnp.minimum(previous[:-1] + mismatch_B.astype(jnp.int32),   # substitute / match
                            previous[1:] + 1)                                # delete a[i - 1]
        candidates = jnp.concatenate([i[None], moves])                       # d[i, 0] = i
        current = jax.lax.cummin(candidates - j) + j                          # insert b[j - 1]
        return current, current[len_b]

    rows = jnp.arange(1, mismatch_AxB.shape[0] + 1, dtype=jnp.int32)
    _, at_len_b = jax.lax.scan(row, j, (rows, mismatch_AxB))
    return jnp.concatenate([len_b[None], at_len_b])[len_a]


def token_errors(hyp_BxH, hyp_lengths_B, ref_BxR, ref_lengths_B):
    """Per-row edit distance between token sequences (e.g. characters for CER)."""
    def one(hyp, hyp_len, ref, ref_len):
        return levenshtein(hyp[:, None] != ref[None, :], hyp_len, ref_len)
    return jax.vmap(one)(hyp_BxH, hyp_lengths_B, ref_BxR, ref_lengths_B)


def split_words(tokens_L, length, separator: int, width: int | None = None):
    """Words of tokens[:length] (maximal runs without `separator`) as rows of a
    W x width array padded with -1, W = ceil(L / 2); returns (words, number of words)."""
    size = tokens_L.shape[0]
    width = width or size
    num_rows = (size + 1) // 2
    index = jnp.arange(size)
    is_char = (index < length) & (tokens_L != separator)
    starts = is_char & ~jnp.concatenate([jnp.zeros(1, bool), is_char[:-1]])
    word = jnp.cumsum(starts) - 1
    position = index - jax.lax.cummax(jnp.where(starts, index, 0))
    words = jnp.full((num_rows, width), -1, tokens_L.dtype)
    words = words.at[jnp.where(is_char, word, num_rows), position].set(tokens_L, mode="drop")
    return words, starts.sum().astype(jnp.int32)


def word_errors(hyp_BxH, hyp_lengths_B, ref_BxR, ref_lengths_B, separator: int):
    """Per-row (word edit distance, number of reference words); words are split on the
    `separator` token (the space)."""
    width = max(hyp_BxH.shape[1], ref_BxR.shape[1])

    def one(hyp, hyp_len, ref, ref_len):
        hyp_words, hyp_count = split_words(hyp, hyp_len, separator, width)
        ref_words, ref_count = split_words(ref, ref_len, separator, width)
        mismatch = jnp.any(hyp_words[:, None, :] != ref_words[None, :, :], axis=-1)
        return levenshtein(mismatch, hyp_count, ref_count), ref_count
    return jax.vmap(one)(hyp_BxH, hyp_lengths_B, ref_BxR, ref_lengths_B)
