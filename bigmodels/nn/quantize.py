"""Frozen weights held in fewer bits, and turned back into float32 where they are used.

A quantized weight is a dict of arrays, so checkpoints, exports and shardings treat it
like any other subtree:

    {"int8": int8 (the weight's shape), "scale": float32}     absmax per output channel:
        the scale has size 1 on the reduced (input) axes
    {"nf4": uint8 (..., n / 2), "scale": float32 (..., n / block)}
        4-bit NormalFloat (QLoRA, Dettmers et al. 2023): two codes a byte, absmax
        scaled blocks of `block` along the last axis
    bfloat16 arrays stay arrays (half the bytes, no scale)

`dequantize` needs nothing but the dict: the kind and the shapes say it all.
"""

import functools
import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("float32", "bfloat16", "int8", "nf4")
NF4_BLOCK = 64
QUANTIZED_KEYS = ("int8", "nf4")


@functools.cache
def nf4_levels() -> np.ndarray:
    """The 16 NF4 values in [-1, 1]: quantiles of a standard normal, 8 on the positive
    side and 7 on the negative, plus an exact 0, scaled so the extremes are +-1."""
    offset = 0.5 * (1 / 32 + 1 / 30)          # keeps the extreme quantiles finite
    inv = NormalDist().inv_cdf
    positive = [inv(p) for p in np.linspace(1 - offset, 0.5, 9)[:-1]]
    negative = [-inv(p) for p in np.linspace(1 - offset, 0.5, 8)[:-1]]
    levels = np.sort(np.array(positive + negative + [0.0]))
    return (levels / np.abs(levels).max()).astype(np.float32)


def is_quantized(node) -> bool:
    return isinstance(node, dict) and any(k in node for k in QUANTIZED_KEYS)


def nf4_block(n: int) -> int:
    """The largest even divisor of `n` up to NF4_BLOCK (0 when `n` is odd: no NF4)."""
    if n % 2:
        return 0
    return max(d for d in range(2, min(n, NF4_BLOCK) + 1, 2) if n % d == 0)


def quantize_int8(w, reduce_axes: tuple) -> dict:
    absmax = jnp.max(jnp.abs(w), axis=reduce_axes, keepdims=True)
    scale = jnp.where(absmax > 0, absmax / 127.0, 1.0).astype(jnp.float32)
    q = jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8)
    return {"int8": q, "scale": scale}


def quantize_nf4(w) -> dict:
    n = w.shape[-1]
    block = nf4_block(n)
    blocks = w.reshape(w.shape[:-1] + (n // block, block))
    absmax = jnp.max(jnp.abs(blocks), axis=-1)
    scale = jnp.where(absmax > 0, absmax, 1.0).astype(jnp.float32)
    levels = jnp.asarray(nf4_levels())
    # The nearest level: its index among the midpoints between neighbouring levels.
    codes = jnp.searchsorted((levels[1:] + levels[:-1]) / 2, blocks / scale[..., None])
    pairs = codes.astype(jnp.uint8).reshape(w.shape[:-1] + (n // 2, 2))
    return {"nf4": pairs[..., 0] | (pairs[..., 1] << 4), "scale": scale}


def dequantize(node):
    """A weight of `quantize` (a dict, a bfloat16 or a float32 array) as float32."""
    if not is_quantized(node):
        return jnp.asarray(node).astype(jnp.float32)
    if "int8" in node:
        return node["int8"].astype(jnp.float32) * node["scale"]
    packed, scale = node["nf4"], node["scale"]
    codes = jnp.stack([packed & 15, packed >> 4], axis=-1)
    shape = packed.shape[:-1] + (2 * packed.shape[-1],)
    values = jnp.asarray(nf4_levels())[codes.reshape(shape)]
    blocks = values.reshape(scale.shape + (shape[-1] // scale.shape[-1],))
    return (blocks * scale[..., None]).reshape(shape)


def quantize(w, kind: str, reduce_axes: tuple):
    """`w` held as `kind`; `reduce_axes` are its input axes (int8's scale is shared
    along them). A weight NF4 cannot split (an odd last axis) is held in int8."""
    if kind == "float32":
        return w
    if kind == "bfloat16":
        return w.astype(jnp.bfloat16)
    if kind == "nf4" and nf4_block(w.shape[-1]):
        return quantize_nf4(w)
    if kind in ("int8", "nf4"):
        return quantize_int8(w, reduce_axes)
    raise ValueError(f"unknown quantization {kind!r} ({' | '.join(KINDS)})")


def quantize_like(w, template):
    """`w` quantized as `template` (a weight `quantize` made, or its shapes) is."""
    if is_quantized(template):
        if "nf4" in template:
            return quantize_nf4(w)
        scale_shape = template["scale"].shape
        return quantize_int8(w, tuple(i for i, (s, n) in enumerate(zip(scale_shape, w.shape))
                                      if s == 1 and n != 1))
    return jnp.asarray(w).astype(template.dtype)


def float_shape(node) -> tuple:
    """The float32 shape of a weight held by `quantize`."""
    if is_quantized(node) and "nf4" in node:
        return tuple(node["nf4"].shape[:-1]) + (2 * node["nf4"].shape[-1],)
    return tuple((node["int8"] if is_quantized(node) else node).shape)


def nbytes(tree) -> int:
    """Bytes of every array in `tree` (arrays or ShapeDtypeStructs)."""
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))
