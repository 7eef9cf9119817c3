"""Magnitude-pruning masks: the sparsity schedule and the two mask structures.

Pure, jit-friendly functions of jnp arrays (bigmodels/regimes/prune.py runs them inside
the jitted step). A mask is a bool array of its weight's shape: True keeps the weight.
Every new mask is taken within the old one (`old & keep`), so masks only shrink.
"""

import jax.numpy as jnp


def scheduled_sparsity(step, target: float, begin: int, end: int):
    """jaxpruner's polynomial schedule: target * (1 - (1 - progress)^3), with
    progress = clip((step - begin) / (end - begin), 0, 1); progress 1 when end == begin
    (one-shot pruning at begin)."""
    step = jnp.asarray(step, jnp.float32)
    if end > begin:
        progress = jnp.clip((step - begin) / (end - begin), 0.0, 1.0)
    else:
        progress = jnp.where(step >= begin, 1.0, 0.0)
    return target * (1.0 - (1.0 - progress) ** 3)


def _scores(weight, old_mask):
    """|w| where the old mask keeps it, -inf where it was pruned already."""
    return jnp.where(old_mask, jnp.abs(weight.astype(jnp.float32)), -jnp.inf)


def unstructured_mask(weight, old_mask, sparsity):
    """Keeps all but the round(sparsity * size) smallest |w| of this tensor, within
    `old_mask` (ties broken by position, so the count is exact)."""
    size = weight.size
    k = jnp.round(sparsity * size).astype(jnp.int32)
    order = jnp.argsort(_scores(weight, old_mask).ravel(), stable=True)
    ranks = jnp.zeros(size, jnp.int32).at[order].set(jnp.arange(size, dtype=jnp.int32))
    return old_mask & (ranks >= k).reshape(weight.shape)


def n_m_mask(weight, old_mask, n: int, m: int):
    """In each group of m consecutive weights along axis 0 (a Dense kernel's first input
    axis), keeps the n largest |w| within `old_mask`. Needs shape[0] % m == 0."""
    shape = weight.shape
    grouped = _scores(weight, old_mask).reshape((shape[0] // m, m) + shape[1:])
    # Rank within each group, largest first: ties broken by position.
    order = jnp.argsort(-grouped, axis=1, stable=True)
    ranks = jnp.argsort(order, axis=1, stable=True)
    return old_mask & (ranks < n).reshape(shape)


def parse_structure(text: str):
    """"unstructured" -> None; "n:m" with 0 < n < m -> (n, m); ValueError otherwise."""
    if text == "unstructured":
        return None
    n, sep, m = text.partition(":")
    n, m = int(n), int(m)
    if not sep or not 0 < n < m:
        raise ValueError(text)
    return n, m
