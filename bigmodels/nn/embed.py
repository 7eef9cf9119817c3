"""Token embedding that can also act as the (tied) output projection."""

import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.dense import contract_transposed
from bigmodels.nn.initializers import normal


class Embed(nn.Module):
    vocab_size: int
    embed_dim: int
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = self.param("embedding", normal(self.init_std, ("vocab", "embed")),
                                    (self.vocab_size, self.embed_dim))

    def __call__(self, tokens_BxT):
        return jnp.take(self.embedding, tokens_BxT, axis=0).astype(self.dtype)

    def attend(self, x_BxTxD):
        """Logits against the embedding table (weight tying)."""
        return contract_transposed(x_BxTxD, self.embedding.astype(self.dtype))
