"""Autoregressive generation with a KV cache: greedy, temperature, top-k and top-p.

`generate` continues one equal-length batch: the prompt is run once (prefill) to fill
the cache, then each new token costs one single-position forward pass. When the cache
is full (the model's context length), it is refilled from the last half-context of
tokens and decoding goes on.

`generate_batch` and `generate_text_batch` continue prompts of different lengths:
- Left padding. Each prompt ends at the same cache slot; a row padded by p slots gives
  its tokens the positions slot - p, so its padding sits at negative positions, which
  the attention cache never attends to and the recurrent LM skips (nn/attention.py,
  models/rnn.py). All rows then write each new token at one shared slot.
- Two compiled programs per (batch, prompt length, token budget) bucket, each rounded
  up to a power of two, and sampling setting: the prefill, and a `jax.lax.while_loop`
  that decodes until every row has stopped (at `eos_id`) or the budget is spent, the
  cache donated to it.
- Row r's token t is drawn with `fold_in(fold_in(key(seed), r), t)`: a row's sample
  does not depend on the other rows of its batch.
- Stop strings are checked on the host, on each row's detokenised text, every
  `STOP_CHECK_EVERY` tokens; a row that has produced one stops there.
- A prompt plus `max_new_tokens` must fit in the model's `context_length` (the
  recurrent LM's training window too); `sample_text` slides the window beyond it.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.data import tokenizers
from bigmodels.errors import BadInput


def sample_logits(logits_BxV, rng, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0):
    """Next tokens from last-position logits. temperature <= 0 means greedy."""
    if temperature <= 0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits = logits_BxV / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        cutoff_index = jnp.sum(cum < top_p, axis=-1, keepdims=True)
        cutoff = jnp.take_along_axis(sorted_logits, cutoff_index, axis=-1)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def _empty_cache(model, batch: int, length: int = 0):
    """A zero cache of `batch` rows and `length` slots (0 = the context length)."""
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0),
                           jnp.zeros((batch, length or model.context_length), jnp.int32),
                           decode=True))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])


@functools.partial(jax.jit, static_argnames=("model", "steps", "temperature", "top_k", "top_p"))
def _decode_chunk(model, params, tokens_BxP, rng, steps: int, temperature: float,
                  top_k: int, top_p: float):
    """Prefills the cache with `tokens_BxP`, then samples `steps` tokens one at a time."""
    b, p = tokens_BxP.shape
    positions = jnp.broadcast_to(jnp.arange(p), (b, p))
    logits, variables = model.apply({"params": params, "cache": _empty_cache(model, b)},
                                    tokens_BxP, positions, decode=True, mutable=["cache"])

    def one_token(carry, i):
        cache, last_logits = carry
        token = sample_logits(last_logits, jax.random.fold_in(rng, i), temperature, top_k,
                              top_p)
        logits, variables = model.apply({"params": params, "cache": cache}, token[:, None],
                                        jnp.full((b, 1), p + i), decode=True,
                                        mutable=["cache"])
        return (variables["cache"], logits[:, -1]), token

    _, new_tokens = jax.lax.scan(one_token, (variables["cache"], logits[:, -1]),
                                 jnp.arange(steps))
    return new_tokens.T


def generate(model, params, prompt_BxP, max_new_tokens: int, seed: int = 0,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Returns prompt + `max_new_tokens` sampled tokens, shape B x (P + N)."""
    tokens = jnp.asarray(prompt_BxP, jnp.int32)
    ctx = model.context_length
    if tokens.shape[1] < 1 or ctx < 2:
        raise BadInput(f"generate: needs a non-empty prompt and context_length >= 2 "
                       f"(prompt of {tokens.shape[1]} tokens, context {ctx})")
    rng = jax.random.key(seed)
    remaining, chunk = max_new_tokens, 0
    while remaining > 0:
        window = tokens[:, -(ctx - 1 if chunk == 0 else ctx // 2):]
        steps = min(remaining, ctx - window.shape[1])
        new = _decode_chunk(model, params, window, jax.random.fold_in(rng, chunk), steps,
                            float(temperature), int(top_k), float(top_p))
        tokens = jnp.concatenate([tokens, new], axis=1)
        remaining -= steps
        chunk += 1
    return np.asarray(tokens)


def generate_uncached(model, params, prompt_BxP, max_new_tokens: int, seed: int = 0,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Reference: recomputes the whole window for every token (slow, for tests).

    Equals `generate` token for token while prompt + new tokens fit in the context;
    beyond it the two slide their windows differently.
    """
    tokens = jnp.asarray(prompt_BxP, jnp.int32)
    rng = jax.random.key(seed)
    apply = jax.jit(lambda t: model.apply({"params": params}, t)[:, -1])
    for i in range(max_new_tokens):
        logits = apply(tokens[:, -(model.context_length - 1):])
        token = sample_logits(logits, jax.random.fold_in(jax.random.fold_in(rng, 0), i),
                              temperature, top_k, top_p)
        tokens = jnp.concatenate([tokens, token[:, None]], axis=1)
    return np.asarray(tokens)


def sample_text(model, params, tokenizer, prompt: str, max_new_tokens: int = 200,
                seed: int = 0, temperature: float = 0.8, top_k: int = 0,
                top_p: float = 1.0) -> str:
    """`prompt` and its continuation, ended by the tokenizer's end-of-text token if it
    has one: `generate_batch` when they fit in the context, else `generate`'s sliding
    window. Both draw the same tokens where both apply."""
    ids = tokenizer.encode(prompt)
    eos_id = end_of_text_id(tokenizer)
    if 0 < len(ids) and len(ids) + max_new_tokens <= model.context_length:
        new = generate_batch(model, params, [ids], max_new_tokens, seed=seed,
                             temperature=temperature, top_k=top_k, top_p=top_p,
                             eos_id=eos_id)[0]
    else:
        out = generate(model, params, ids[None, :], max_new_tokens, seed, temperature, top_k,
                       top_p)
        new = _cut_at(out[0, len(ids):], eos_id)
    return tokenizer.decode(np.concatenate([ids, new]))


# ---- ragged batches -------------------------------------------------------------------

STOP_CHECK_EVERY = 16     # tokens decoded between two host-side stop-string checks
NO_EOS = -1


def _bucket(n: int) -> int:
    """The power of two >= n."""
    return 1 << max(0, n - 1).bit_length()


class _State(NamedTuple):
    """The decoding loop's carry: `step` tokens of each row are in `tokens_BxN`."""
    step: jax.Array
    tokens_BxN: jax.Array
    done_B: jax.Array
    lengths_B: jax.Array              # prompt lengths
    keys_B: jax.Array                 # each row's sampling key
    cache: Any


def _pick(logits_BxV, keys_B, step, sampling):
    """Each row's next token, from its own key folded with `step`."""
    temperature, top_k, top_p = sampling
    if temperature <= 0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    one_row = lambda logits_V, key: sample_logits(  # noqa: E731
        logits_V[None], jax.random.fold_in(key, step), temperature, top_k, top_p)[0]
    return jax.vmap(one_row)(logits_BxV, keys_B)


def _forward(model, params, cache, tokens_BxT, positions_BxT):
    logits, variables = model.apply({"params": params, "cache": cache}, tokens_BxT,
                                    positions_BxT, decode=True, mutable=["cache"])
    return logits[:, -1], variables["cache"]


@functools.partial(jax.jit, static_argnames=("model", "new_len", "sampling"))
def _prefill(model, params, tokens_BxP, lengths_B, done_B, key, eos_id, new_len: int,
             sampling) -> _State:
    """Runs the left-padded prompts through an empty cache and picks each first token."""
    b, p = tokens_BxP.shape
    positions_BxP = jnp.arange(p)[None, :] - (p - lengths_B)[:, None]
    cache = _empty_cache(model, b, p + new_len)
    if p > 1:   # the prompts but their last tokens: no vocabulary projection (unused)
        _, cache = _forward(model, params, cache, tokens_BxP[:, :-1], positions_BxP[:, :-1])
    logits_BxV, cache = _forward(model, params, cache, tokens_BxP[:, -1:],
                                 positions_BxP[:, -1:])
    keys_B = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(b))
    token_B = _pick(logits_BxV, keys_B, 0, sampling)
    tokens_BxN = jnp.zeros((b, new_len), jnp.int32).at[:, 0].set(token_B)
    return _State(jnp.array(1, jnp.int32), tokens_BxN, done_B | (token_B == eos_id),
                  lengths_B, keys_B, cache)


@functools.partial(jax.jit, static_argnames=("model", "sampling"), donate_argnames=("state",))
def _decode(model, params, state: _State, stop_at, eos_id, sampling) -> _State:
    """Decodes until `stop_at` tokens are written or every row is done."""

    def not_finished(s: _State):
        return (s.step < stop_at) & ~jnp.all(s.done_B)

    def one_token(s: _State) -> _State:
        last_B = jax.lax.dynamic_index_in_dim(s.tokens_BxN, s.step - 1, 1, keepdims=False)
        logits_BxV, cache = _forward(model, params, s.cache, last_B[:, None],
                                     (s.lengths_B + s.step - 1)[:, None])
        token_B = jnp.where(s.done_B, 0, _pick(logits_BxV, s.keys_B, s.step, sampling))
        tokens_BxN = jax.lax.dynamic_update_index_in_dim(s.tokens_BxN, token_B, s.step, 1)
        return s._replace(step=s.step + 1, tokens_BxN=tokens_BxN, cache=cache,
                          done_B=s.done_B | (token_B == eos_id))

    return jax.lax.while_loop(not_finished, one_token, state)


def _check_prompts(model, prompts, max_new_tokens: int) -> list[np.ndarray]:
    """The prompts as int32 rows; BadInput names the first one that cannot be continued."""
    if max_new_tokens < 0:
        raise BadInput(f"max_new_tokens: must be >= 0, got {max_new_tokens}")
    ctx, vocab = model.context_length, model.vocab_size
    rows = []
    for i, prompt in enumerate(prompts):
        row = np.asarray(prompt)
        if row.ndim != 1 or row.size == 0 or row.dtype.kind not in "iu":
            raise BadInput(f"prompt {i}: needs a non-empty 1-D sequence of token ids, got "
                           f"shape {row.shape} of {row.dtype}")
        if row.min() < 0 or row.max() >= vocab:
            raise BadInput(f"prompt {i}: token ids must lie in [0, {vocab}), got "
                           f"{row.min()} ... {row.max()}")
        if row.size + max_new_tokens > ctx:
            raise BadInput(f"prompt {i}: {row.size} tokens + max_new_tokens={max_new_tokens} "
                           f"exceed the model's context_length={ctx}")
        rows.append(row.astype(np.int32))
    return rows


def _run(model, params, rows, max_new_tokens: int, seed: int, sampling, eos_id,
         stopped=None) -> tuple[np.ndarray, int]:
    """(tokens B x N, steps taken) of the rows; `stopped(r, tokens)` (host side) says
    whether row r has stopped, checked every STOP_CHECK_EVERY tokens."""
    b, p = _bucket(len(rows)), _bucket(max(len(r) for r in rows))
    tokens_BxP = np.zeros((b, p), np.int32)
    lengths_B = np.ones((b,), np.int32)        # rows past the caller's: 1 token, done
    for r, row in enumerate(rows):
        tokens_BxP[r, p - len(row):] = row
        lengths_B[r] = len(row)
    done_B = np.arange(b) >= len(rows)
    eos = np.int32(NO_EOS if eos_id is None else eos_id)
    state = _prefill(model, params, tokens_BxP, lengths_B, done_B, jax.random.key(seed), eos,
                     _bucket(max_new_tokens), sampling)
    step = 1
    while step < max_new_tokens:
        stop_at = max_new_tokens if stopped is None else min(max_new_tokens,
                                                               step + STOP_CHECK_EVERY)
        state = _decode(model, params, state, np.int32(stop_at), eos, sampling)
        step = int(state.step)
        if stopped is None or step < stop_at:    # finished: budget spent or all rows done
            break
        done = np.array(state.done_B)
        tokens = np.asarray(state.tokens_BxN)
        for r in np.flatnonzero(~done):
            done[r] = stopped(r, tokens[r, :step])
        if done.all():
            break
        state = state._replace(done_B=jnp.asarray(done))
    return np.asarray(state.tokens_BxN)[:len(rows), :step], step


def _sampling(temperature: float, top_k: int, top_p: float) -> tuple:
    """The sampling settings, checked, as the compiled programs' static key (greedy
    ignores top_k and top_p)."""
    if top_k < 0:
        raise BadInput(f"top_k: must be >= 0 (0 = all tokens), got {top_k}")
    if not 0 < top_p <= 1:
        raise BadInput(f"top_p: must lie in (0, 1] (1 = off), got {top_p}")
    if temperature <= 0:
        return (0.0, 0, 1.0)
    return (float(temperature), int(top_k), float(top_p))


def _cut_at(tokens: np.ndarray, eos_id) -> np.ndarray:
    if eos_id is not None and (tokens == eos_id).any():
        return tokens[:int(np.argmax(tokens == eos_id))]
    return tokens


def generate_batch(model, params, prompts, max_new_tokens: int, *, seed: int = 0,
                   temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                   eos_id=None) -> list[np.ndarray]:
    """Per prompt (1-D token ids, any lengths), its new tokens only (int32), cut before
    the first `eos_id` when one is given."""
    sampling = _sampling(temperature, top_k, top_p)
    rows = _check_prompts(model, prompts, max_new_tokens)
    if not rows or max_new_tokens == 0:
        return [np.zeros((0,), np.int32) for _ in rows]
    tokens, _ = _run(model, params, rows, max_new_tokens, seed, sampling, eos_id)
    return [_cut_at(t, eos_id) for t in tokens]


# Where a text ends (used to stop generation); it lives with the tokenizers.
end_of_text_id = tokenizers.end_of_text_id


def generate_text_batch(model, params, tokenizer, prompts: list[str], max_new_tokens: int,
                        *, seed: int = 0, temperature: float = 0.0, top_k: int = 0,
                        top_p: float = 1.0, stop=()) -> list[str]:
    """Per prompt, its continuation text only, ended by the tokenizer's end-of-text
    token (if it has one) and cut before the first of the `stop` strings."""
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    if not all(stop):
        raise BadInput("stop: an empty stop string would stop every row at once")
    sampling = _sampling(temperature, top_k, top_p)
    rows = _check_prompts(model, [tokenizer.encode(p) for p in prompts], max_new_tokens)
    if not rows or max_new_tokens == 0:
        return ["" for _ in rows]
    eos_id = end_of_text_id(tokenizer)
    heads = [tokenizer.decode(row) for row in rows]

    def continuation(r: int, tokens: np.ndarray) -> str:
        # Decoded with its prompt: some tokenizers (SentencePiece) drop a leading space
        # when a text starts with the token.
        tokens = _cut_at(tokens, eos_id)
        text = tokenizer.decode(np.concatenate([rows[r], tokens]))
        return text[len(heads[r]):] if text.startswith(heads[r]) else tokenizer.decode(tokens)

    def stopped(r: int, tokens: np.ndarray) -> bool:
        text = continuation(r, tokens)
        return any(s in text for s in stop)

    tokens, _ = _run(model, params, rows, max_new_tokens, seed, sampling, eos_id,
                     stopped if stop else None)
    texts = [continuation(r, t) for r, t in enumerate(tokens)]
    return [text[:min([text.find(s) for s in stop if s in text], default=len(text))]
            for text in texts]
