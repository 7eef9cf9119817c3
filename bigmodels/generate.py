"""Autoregressive generation with a KV cache: greedy, temperature, top-k and top-p.

The prompt is run once (prefill) to fill the cache, then each new token costs one
single-position forward pass. When the cache is full (the model's context length),
it is refilled from the last half-context of tokens and decoding goes on.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

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


def _empty_cache(model, batch: int):
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((batch, model.context_length),
                                                        jnp.int32), decode=True))
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
    ids = tokenizer.encode(prompt)[None, :]
    out = generate(model, params, ids, max_new_tokens, seed, temperature, top_k, top_p)
    return tokenizer.decode(out[0])
