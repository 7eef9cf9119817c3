"""The Transformer feed-forward block: Dense -> GELU -> Dense."""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.initializers import normal, zeros


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
        h = nn.Dense(self.hidden_dim, use_bias=self.use_bias, dtype=self.dtype,
                     kernel_init=normal(self.init_std, ("embed", "mlp")),
                     bias_init=zeros(("mlp",)), name="wi")(x_BxTxD)
        h = jax.nn.gelu(h, approximate=self.approximate_gelu)
        return nn.Dense(d, use_bias=self.use_bias, dtype=self.dtype,
                        kernel_init=normal(self.out_init_std, ("mlp", "embed")),
                        bias_init=zeros(("embed",)), name="wo")(h)
