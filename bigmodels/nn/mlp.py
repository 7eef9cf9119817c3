"""The Transformer feed-forward block: Dense -> GELU -> Dense."""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.dense import Dense


class MLP(nn.Module):
    hidden_dim: int
    use_bias: bool = True
    init_std: float = 0.02
    out_init_std: float = 0.02
    approximate_gelu: bool = True   # tanh GELU: cheaper than erf on CPU, same quality
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        d = x_BxTxD.shape[-1]
        h = Dense(self.hidden_dim, ("embed", "mlp"), use_bias=self.use_bias,
                  init_std=self.init_std, dtype=self.dtype, name="wi")(x_BxTxD)
        h = jax.nn.gelu(h, approximate=self.approximate_gelu)
        return Dense(d, ("mlp", "embed"), use_bias=self.use_bias, init_std=self.out_init_std,
                     dtype=self.dtype, name="wo")(h)
