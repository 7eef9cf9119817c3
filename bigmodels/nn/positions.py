"""Positional encodings: learned absolute embeddings and rotary (RoPE)."""

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
