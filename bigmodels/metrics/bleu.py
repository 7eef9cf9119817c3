"""Corpus-level BLEU-4 on token ids (Papineni et al. 2002), one reference per example.

BLEU is not a mean of per-sentence values: it is a function of n-gram statistics
summed over the whole corpus. `ngram_stats` computes those sums for a batch inside jit
(fixed shapes, no host round-trip); eval adds them up over batches and `bleu` turns
the totals into the score at the end. No smoothing: a corpus with no matching 4-gram
scores 0. Scores are on sacreBLEU's 0-100 scale, but over the model's tokens (e.g.
characters or bytes), not over words, so they are not comparable with published
word-level BLEU.
"""

import jax.numpy as jnp
import numpy as np

MAX_N = 4
NUM_STATS = 2 * MAX_N + 2     # matches[1..4], totals[1..4], hypothesis length, reference length


def _shift(eq_BxTxR, n: int):
    """eq[:, i + n, j + n], False past the end."""
    if n == 0:
        return eq_BxTxR
    shifted = eq_BxTxR[:, n:, n:]
    return jnp.pad(shifted, ((0, 0), (0, n), (0, n)), constant_values=False)


def ngram_stats(hyp_BxT, hyp_lengths_B, ref_BxR, ref_lengths_B, max_n: int = MAX_N):
    """Float32 vector of summed clipped n-gram matches, n-gram totals (n = 1..max_n)
    and total hypothesis and reference lengths of the batch.

    The clipped count of an n-gram is min(its count in the hypothesis, its count in the
    reference). It is added once, at the n-gram's first occurrence in the hypothesis,
    so every sum is an exact integer.
    """
    t, r = hyp_BxT.shape[1], ref_BxR.shape[1]
    hh1 = hyp_BxT[:, :, None] == hyp_BxT[:, None, :]           # B x T x T
    hr1 = hyp_BxT[:, :, None] == ref_BxR[:, None, :]           # B x T x R
    earlier = jnp.arange(t)[None, :] < jnp.arange(t)[:, None]  # j < i
    hh, hr = hh1, hr1
    matches, totals = [], []
    for n in range(1, max_n + 1):
        if n > 1:                        # an n-gram matches if its (n-1)-prefix and last token do
            hh, hr = hh & _shift(hh1, n - 1), hr & _shift(hr1, n - 1)
        hyp_ok = jnp.arange(t)[None, :] + n <= hyp_lengths_B[:, None]     # B x T
        ref_ok = jnp.arange(r)[None, :] + n <= ref_lengths_B[:, None]     # B x R
        same_hh = hh & hyp_ok[:, None, :]
        in_hyp = jnp.sum(same_hh, -1)
        in_ref = jnp.sum(hr & ref_ok[:, None, :], -1)
        first = hyp_ok & ~jnp.any(same_hh & earlier[None], -1)
        matches.append(jnp.sum(jnp.where(first, jnp.minimum(in_hyp, in_ref), 0)))
        totals.append(jnp.sum(hyp_ok))
    lengths = [jnp.sum(hyp_lengths_B), jnp.sum(ref_lengths_B)]
    return jnp.stack(matches + totals + lengths).astype(jnp.float32)


def bleu(stats) -> float:
    """Corpus BLEU (0-100) from summed `ngram_stats`: the geometric mean of the n-gram
    precisions times the brevity penalty exp(1 - ref/hyp) when hyp < ref."""
    stats = np.asarray(stats, np.float64)
    max_n = (len(stats) - 2) // 2
    matches, totals = stats[:max_n], stats[max_n:2 * max_n]
    hyp_len, ref_len = stats[-2], stats[-1]
    if hyp_len <= 0 or np.any(matches <= 0):
        return 0.0
    log_precision = np.mean(np.log(matches / totals))
    brevity = 1.0 if hyp_len > ref_len else float(np.exp(1.0 - ref_len / hyp_len))
    return float(100.0 * brevity * np.exp(log_precision))
