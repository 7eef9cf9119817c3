"""Greedy and beam-search decoding for encoder-decoder models (T5), with a KV cache.

Both are pure, jit-able functions of fixed shapes: the source is encoded once, the
first decoder step stores the cross-attention keys and values of the encoder output in
the cache, and each later step feeds one token per row. A `jax.lax.while_loop` stops
as soon as every row is finished (or at `max_len`).

A hypothesis ends when it emits <eos> or reaches `max_len` tokens; the tokens after
its end are <pad>. `greedy_uncached` and `sequence_log_probs` recompute everything
and exist to check the cached paths.
"""

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def empty_cache(model, batch: int, source_len: int, max_len: int):
    """A zero cache for `batch` rows, `source_len` source tokens and `max_len` steps."""
    shapes = jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((batch, source_len), jnp.int32),
        jnp.ones((batch,), jnp.int32), jnp.zeros((batch, max_len), jnp.int32), decode=True))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])


def _first_step(model, params, cache, encoded, mask, bos_id: int):
    """Feeds <bos> at position 0 with the encoder output; the cache keeps its projection."""
    b = encoded.shape[0]
    logits, variables = model.apply(
        {"params": params, "cache": cache}, jnp.full((b, 1), bos_id, jnp.int32), encoded,
        mask, jnp.zeros((b, 1), jnp.int32), decode=True, method="decode", mutable=["cache"])
    return logits[:, 0], variables["cache"]


def _next_step(model, params, cache, tokens_B, position, max_len: int, logits):
    """Logits after `tokens_B` at `position`; past the last position nothing is run."""
    def run(cache):
        out, variables = model.apply(
            {"params": params, "cache": cache}, tokens_B[:, None], None, None,
            jnp.full((tokens_B.shape[0], 1), position, jnp.int32), decode=True,
            method="decode", mutable=["cache"])
        return out[:, 0], variables["cache"]
    return jax.lax.cond(position < max_len, run, lambda c: (logits, c), cache)


def greedy(model, params, inputs_BxS, input_lengths_B, max_len: int, bos_id: int,
           eos_id: int, pad_id: int):
    """Argmax decoding: B x max_len tokens, <eos>-terminated (unless cut at max_len)."""
    b, s = inputs_BxS.shape
    encoded, mask = model.apply({"params": params}, inputs_BxS, input_lengths_B,
                                method="encode")
    logits, cache = _first_step(model, params, empty_cache(model, b, s, max_len), encoded,
                                mask, bos_id)

    def body(state):
        i, tokens, done, logits, cache = state
        token = jnp.where(done, pad_id, jnp.argmax(logits, -1).astype(jnp.int32))
        tokens = tokens.at[:, i].set(token)
        done = done | (token == eos_id)
        logits, cache = _next_step(model, params, cache, token, i + 1, max_len, logits)
        return i + 1, tokens, done, logits, cache

    def keep_going(state):
        i, _, done, _, _ = state
        return (i < max_len) & ~jnp.all(done)

    state = (jnp.array(0, jnp.int32), jnp.full((b, max_len), pad_id, jnp.int32),
             jnp.zeros((b,), jnp.bool_), logits, cache)
    return jax.lax.while_loop(keep_going, body, state)[1]


def length_penalty(length, alpha: float):
    """GNMT's ((5 + length) / 6) ** alpha; 1 for alpha = 0 (plain log-probability)."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, params, inputs_BxS, input_lengths_B, max_len: int, beam_size: int,
                bos_id: int, eos_id: int, pad_id: int, alpha: float = 0.0):
    """(sequences B x K x max_len, scores B x K), best first.

    A hypothesis' score is its summed token log-probability / length_penalty(length).
    Each step ranks the K x V extensions of the K live beams and keeps the top 2K:
    those that end (<eos>, or the last position) and rank within the top K become
    finished hypotheses (fairseq's rule, so K = 1 is exactly greedy decoding); the K
    best that do not end stay live. A row stops when its K-th best finished score beats
    any score a live beam could still reach.
    """
    b, s = inputs_BxS.shape
    k = beam_size
    encoded, mask = model.apply({"params": params}, inputs_BxS, input_lengths_B,
                                method="encode")
    logits, cache = _first_step(model, params, empty_cache(model, b * k, s, max_len),
                                jnp.repeat(encoded, k, axis=0), jnp.repeat(mask, k, axis=0),
                                bos_id)
    rows = jnp.arange(b)[:, None]

    def body(state):
        i, alive_seq, alive_logp, done_seq, done_score, logits, cache = state
        logp = jax.nn.log_softmax(logits).reshape(b, k, -1)
        v = logp.shape[-1]
        scores, flat = jax.lax.top_k((alive_logp[..., None] + logp).reshape(b, k * v), 2 * k)
        parent, token = flat // v, (flat % v).astype(jnp.int32)
        seqs = alive_seq[rows, parent].at[:, :, i].set(token)              # B x 2K x L
        ends = (token == eos_id) | (i == max_len - 1)
        finishing = ends & (jnp.arange(2 * k) < k)
        new_done = jnp.where(finishing, scores / length_penalty(i + 1, alpha), NEG_INF)
        done_score, best = jax.lax.top_k(jnp.concatenate([done_score, new_done], 1), k)
        done_seq = jnp.concatenate([done_seq, seqs], 1)[rows, best]
        alive_logp, best = jax.lax.top_k(jnp.where(ends, NEG_INF, scores), k)
        alive_seq, token = seqs[rows, best], token[rows, best]
        # Beams are reordered: each row of the cache follows its parent beam.
        order = (rows * k + parent[rows, best]).reshape(-1)
        cache = jax.tree.map(lambda x: x[order] if x.ndim else x, cache)
        logits, cache = _next_step(model, params, cache, token.reshape(-1), i + 1, max_len,
                                   logits)
        return i + 1, alive_seq, alive_logp, done_seq, done_score, logits, cache

    def keep_going(state):
        i, _, alive_logp, _, done_score, _, _ = state
        # Log-probabilities only fall as a beam grows and the penalty is largest at
        # max_len, so a live beam can reach at most this score.
        reachable = jnp.max(alive_logp, -1) / length_penalty(max_len, alpha)
        return (i < max_len) & ~jnp.all(jnp.min(done_score, -1) >= reachable)

    start_logp = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)     # one live beam at first
    empty = jnp.full((b, k, max_len), pad_id, jnp.int32)
    state = (jnp.array(0, jnp.int32), empty, jnp.broadcast_to(start_logp, (b, k)), empty,
             jnp.full((b, k), NEG_INF), logits, cache)
    _, _, _, done_seq, done_score, _, _ = jax.lax.while_loop(keep_going, body, state)
    return done_seq, done_score


def sequence_log_probs(model, params, inputs_BxS, input_lengths_B, sequences_BxL,
                       bos_id: int, eos_id: int):
    """Summed log-probability of each sequence up to and including its first <eos>,
    by teacher forcing (no cache): what beam search ranks (with alpha = 0)."""
    dec_in = jnp.concatenate([jnp.full_like(sequences_BxL[:, :1], bos_id),
                              sequences_BxL[:, :-1]], axis=1)
    logp = jax.nn.log_softmax(model.apply({"params": params}, inputs_BxS, input_lengths_B,
                                          dec_in))
    token_logp = jnp.take_along_axis(logp, sequences_BxL[..., None], -1)[..., 0]
    eos_before = jnp.cumsum(sequences_BxL == eos_id, axis=1) - (sequences_BxL == eos_id)
    return jnp.sum(jnp.where(eos_before == 0, token_logp, 0.0), axis=1)


def greedy_uncached(model, params, inputs_BxS, input_lengths_B, max_len: int, bos_id: int,
                    eos_id: int, pad_id: int):
    """Reference greedy decoding: encoder and decoder are rerun in full for every token
    (the decoder on <bos> + the tokens so far, padded; causal, so the padding is unseen)."""
    b = inputs_BxS.shape[0]

    @jax.jit
    def next_token(tokens, i):
        dec_in = jnp.concatenate([jnp.full((b, 1), bos_id, jnp.int32), tokens[:, :-1]], 1)
        logits = model.apply({"params": params}, inputs_BxS, input_lengths_B, dec_in)
        return jnp.argmax(logits[:, i], -1).astype(jnp.int32)

    tokens = jnp.full((b, max_len), pad_id, jnp.int32)
    done = jnp.zeros((b,), jnp.bool_)
    for i in range(max_len):
        token = jnp.where(done, pad_id, next_token(tokens, i))
        tokens = tokens.at[:, i].set(token)
        done = done | (token == eos_id)
    return tokens
