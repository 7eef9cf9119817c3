"""Multi-head attention (self or cross) through `jax.nn.dot_product_attention`.

`jax.nn.dot_product_attention` picks cuDNN flash attention on GPUs that have it
(`implementation="cudnn"`) and a fused XLA path elsewhere. With `decode=True` the
module keeps a KV cache in the `cache` collection, so generation attends to
earlier tokens without recomputing them.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.dense import Dense
from bigmodels.nn.positions import apply_rotary


class MultiHeadAttention(nn.Module):
    num_heads: int
    head_dim: int
    use_bias: bool = True
    causal: bool = True
    rotary: bool = False
    init_std: float = 0.02
    out_init_std: float = 0.02
    implementation: str | None = None   # None = let JAX choose; "cudnn" | "xla"
    dtype: jnp.dtype = jnp.float32

    def _project(self, x, count, name):
        return Dense((count, self.num_heads, self.head_dim), ("embed", "qkv", "heads", "kv"),
                     use_bias=self.use_bias, init_std=self.init_std, dtype=self.dtype,
                     name=name)(x)

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT=None, context_BxSxD=None, mask_BxS=None,
                 decode: bool = False):
        """Self-attention when `context_BxSxD` is None, else cross-attention to it.

        `mask_BxS` marks valid key positions (padding mask); causality is added
        for self-attention when `causal` is set.
        """
        d = x_BxTxD.shape[-1]
        if context_BxSxD is None:
            # One fused matmul for q, k and v: fewer, larger GEMMs are faster everywhere.
            q, k, v = jnp.unstack(self._project(x_BxTxD, 3, "qkv"), axis=2)
        else:
            q = self._project(x_BxTxD, 1, "q")[:, :, 0]
            k, v = jnp.unstack(self._project(context_BxSxD, 2, "kv"), axis=2)
        if self.rotary and context_BxSxD is None:
            q = apply_rotary(q, positions_BxT)
            k = apply_rotary(k, positions_BxT)

        if decode:
            if context_BxSxD is not None or mask_BxS is not None:
                raise NotImplementedError("the KV cache supports causal self-attention only")
            out = self._attend_with_cache(q, k, v, positions_BxT)
        else:
            is_causal = self.causal and context_BxSxD is None
            mask = None if mask_BxS is None else mask_BxS[:, None, None, :]
            out = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=is_causal,
                                               implementation=self.implementation)
        return Dense(d, ("heads", "kv", "embed"), in_axes=2, use_bias=self.use_bias,
                     init_std=self.out_init_std, dtype=self.dtype, name="out")(out)

    def _attend_with_cache(self, q, k, v, positions_BxT):
        """Writes k, v at the cache index and attends to every cached position <= query."""
        is_initialized = self.has_variable("cache", "key")
        cached_k = self.variable("cache", "key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "value", jnp.zeros, v.shape, v.dtype)
        index = self.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
        if not is_initialized:   # the init call only allocates a max-length cache
            return jax.nn.dot_product_attention(q, k, v, is_causal=True)
        t = q.shape[1]
        start = index.value
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, (0, start, 0, 0))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, start, 0, 0))
        index.value = start + t
        max_len = cached_k.value.shape[1]
        query_pos = start + jnp.arange(t)
        mask = jnp.arange(max_len)[None, :] <= query_pos[:, None]          # T x S
        return jax.nn.dot_product_attention(q, cached_k.value, cached_v.value,
                                            mask=mask[None, None])
