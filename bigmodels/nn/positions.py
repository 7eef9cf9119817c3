"""Positional encodings: learned absolute embeddings, rotary (RoPE) and T5's bucketed
relative attention bias."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from bigmodels.nn.initializers import normal


class LearnedPositions(nn.Module):
    """Adds a learned vector per absolute position (GPT-2 style)."""
    context_length: int
    embed_dim: int
    init_std: float = 0.02

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT):
        table = self.param("embedding", normal(self.init_std, ("context", "embed")),
                           (self.context_length, self.embed_dim))
        return x_BxTxD + jnp.take(table, positions_BxT, axis=0).astype(x_BxTxD.dtype)


@dataclasses.dataclass(frozen=True)
class Rope:
    """Rotary frequencies: `theta` is the base (10000 in RoFormer, 500000 in Llama 3).

    `scaling_factor` > 0 applies Llama 3.1's long-context rescaling: wavelengths longer
    than `original_context / low_freq_factor` are stretched by the factor, those shorter
    than `original_context / high_freq_factor` are kept, and the band between is blended.
    """
    theta: float = 10000.0
    scaling_factor: float = 0.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 8192

    def frequencies(self, head_dim: int) -> np.ndarray:
        """The head_dim / 2 angular frequencies (radians per position), float32."""
        half = head_dim // 2
        freqs = 1.0 / self.theta ** (np.arange(half, dtype=np.float64) / half)
        if self.scaling_factor > 0:
            wavelength = 2 * math.pi / freqs
            # 0 at and beyond the long-wavelength edge, 1 at the short one.
            blend = np.clip((self.original_context / wavelength - self.low_freq_factor)
                            / (self.high_freq_factor - self.low_freq_factor), 0.0, 1.0)
            freqs = (1 - blend) * freqs / self.scaling_factor + blend * freqs
        return freqs.astype(np.float32)


def apply_rotary(x_BxTxNxH, positions_BxT, rope: Rope = Rope()):
    """Rotates pairs (i, i + H/2) of each head by position-dependent angles."""
    freqs = jnp.asarray(rope.frequencies(x_BxTxNxH.shape[-1]))
    angles = positions_BxT[..., None].astype(jnp.float32) * freqs   # B x T x H/2
    sin = jnp.sin(angles)[:, :, None, :]
    cos = jnp.cos(angles)[:, :, None, :]
    x1, x2 = jnp.split(x_BxTxNxH.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_BxTxNxH.dtype)


def _log_bucket_edges(num_buckets: int, max_distance: int) -> np.ndarray:
    """The smallest distance in each of T5's log-spaced buckets, exact + 1 ... num_buckets - 1
    (distances below exact = num_buckets // 2 are buckets of their own). Computed once, in
    float32 in T5's order of operations, so the device only compares integers and every
    backend agrees with checkpoints trained with that rounding."""
    exact = num_buckets // 2
    distance = np.arange(exact, max(max_distance, exact) + 1)
    scaled = (np.log(distance.astype(np.float32) / np.float32(exact))
              / np.float32(math.log(max_distance / exact)) * np.float32(num_buckets - exact))
    bucket = np.minimum(exact + scaled.astype(np.int64), num_buckets - 1)
    # Buckets are non-decreasing in the distance; one never reached starts past the range.
    first = np.searchsorted(bucket, np.arange(exact + 1, num_buckets), side="left")
    return (exact + first).astype(np.int32)


def relative_position_bucket(relative_BxTxS, num_buckets: int = 32, max_distance: int = 128,
                             bidirectional: bool = True):
    """T5's bucket of each key - query distance: one bucket per distance below
    num_buckets / 2 (of each direction), log-spaced ones up to `max_distance`, beyond
    which all share the last. Unidirectional (a causal decoder) counts only keys before
    the query; bidirectional gives keys after it buckets of their own."""
    offset = 0
    if bidirectional:
        num_buckets //= 2
        offset = jnp.where(relative_BxTxS > 0, num_buckets, 0)
        distance = jnp.abs(relative_BxTxS)
    else:
        distance = jnp.maximum(-relative_BxTxS, 0)
    edges = jnp.asarray(_log_bucket_edges(num_buckets, max_distance))
    log_spaced = num_buckets // 2 + jnp.searchsorted(edges, distance, side="right")
    return offset + jnp.where(distance < num_buckets // 2, distance, log_spaced)


class RelativePositionBias(nn.Module):
    """T5's relative positions: a learned bias of the attention logits per head and
    bucket of key - query distance (one table per stack, shared by all its layers)."""
    num_heads: int
    num_buckets: int = 32
    max_distance: int = 128
    bidirectional: bool = True
    init_std: float = 0.02

    @nn.compact
    def __call__(self, query_positions_BxT, key_positions_BxS):
        """The bias, B x N x T x S, to add to the attention logits."""
        table = self.param("embedding", normal(self.init_std, ("context", None)),
                           (self.num_buckets, self.num_heads))
        relative_BxTxS = key_positions_BxS[:, None, :] - query_positions_BxT[:, :, None]
        buckets = relative_position_bucket(relative_BxTxS, self.num_buckets,
                                           self.max_distance, self.bidirectional)
        return jnp.moveaxis(jnp.take(table, buckets, axis=0), -1, 1)
