"""Positional encodings: learned absolute embeddings and rotary (RoPE)."""

import jax.numpy as jnp
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


def apply_rotary(x_BxTxNxH, positions_BxT, base: float = 10000.0):
    """Rotates pairs (i, i + H/2) of each head by position-dependent angles."""
    half = x_BxTxNxH.shape[-1] // 2
    freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions_BxT[..., None].astype(jnp.float32) * freqs   # B x T x H/2
    sin = jnp.sin(angles)[:, :, None, :]
    cos = jnp.cos(angles)[:, :, None, :]
    x1, x2 = jnp.split(x_BxTxNxH.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_BxTxNxH.dtype)
