"""LayerNorm and RMSNorm over the last axis, with optional bias.

Statistics are computed in float32 whatever the compute dtype, because the
variance of bf16 activations loses too much precision.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.initializers import ones, zeros


class LayerNorm(nn.Module):
    use_bias: bool = True
    eps: float = 1e-5
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", ones(("norm",)), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        centred = x32 - jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
        y = centred * jax.lax.rsqrt(var + self.eps) * scale
        if self.use_bias:
            y = y + self.param("bias", zeros(("norm",)), (x.shape[-1],))
        return y.astype(self.dtype)


class RMSNorm(nn.Module):
    use_bias: bool = False
    eps: float = 1e-6
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", ones(("norm",)), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        y = y * scale
        if self.use_bias:
            y = y + self.param("bias", zeros(("norm",)), (x.shape[-1],))
        return y.astype(self.dtype)


def make_norm(kind: str, use_bias: bool, dtype=jnp.float32, name=None,
              eps: float = 0.0) -> nn.Module:
    """A LayerNorm or RMSNorm; `eps` 0 keeps the norm's own default (1e-5, 1e-6)."""
    extra = {"eps": eps} if eps else {}
    if kind == "layernorm":
        return LayerNorm(use_bias=use_bias, dtype=dtype, name=name, **extra)
    if kind == "rmsnorm":
        return RMSNorm(use_bias=use_bias, dtype=dtype, name=name, **extra)
    raise ValueError(f"unknown norm {kind!r} (layernorm | rmsnorm)")
