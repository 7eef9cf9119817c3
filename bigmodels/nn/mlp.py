"""The Transformer feed-forward block: Dense -> activation -> Dense, or a gated one.

    gelu, relu:      wo(act(wi(x)))                           GPT-2, BERT, ViT, T5 v1.0
    swiglu, geglu:   wo(act(gate(x)) * up(x))                 Llama (SiLU), T5 v1.1 (GELU)

A gated MLP's gate and up projections are one Dense, `wi` with kernel D x 2 x F (gate
first): one matmul instead of two.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.dense import Dense

ACTIVATIONS = ("gelu", "relu", "swiglu", "geglu")
GATED = {"swiglu", "geglu"}


class MLP(nn.Module):
    hidden_dim: int
    use_bias: bool = True
    init_std: float = 0.02
    out_init_std: float = 0.02
    activation: str = "gelu"        # gelu | relu | swiglu | geglu
    approximate_gelu: bool = True   # tanh GELU: cheaper than erf on CPU, same quality
    dtype: jnp.dtype = jnp.float32

    def _act(self, h):
        if self.activation in ("gelu", "geglu"):
            return jax.nn.gelu(h, approximate=self.approximate_gelu)
        if self.activation == "relu":
            return jax.nn.relu(h)
        if self.activation == "swiglu":
            return jax.nn.silu(h)
        raise ValueError(f"unknown MLP activation {self.activation!r} "
                         f"({' | '.join(ACTIVATIONS)})")

    @nn.compact
    def __call__(self, x_BxTxD):
        d = x_BxTxD.shape[-1]
        if self.activation in GATED:
            h = Dense((2, self.hidden_dim), ("embed", None, "mlp"), use_bias=self.use_bias,
                      init_std=self.init_std, dtype=self.dtype, name="wi")(x_BxTxD)
            h = self._act(h[..., 0, :]) * h[..., 1, :]
        else:
            h = Dense(self.hidden_dim, ("embed", "mlp"), use_bias=self.use_bias,
                      init_std=self.init_std, dtype=self.dtype, name="wi")(x_BxTxD)
            h = self._act(h)
        return Dense(d, ("mlp", "embed"), use_bias=self.use_bias, init_std=self.out_init_std,
                     dtype=self.dtype, name="wo")(h)
