"""Multi-head attention (self or cross) through `jax.nn.dot_product_attention`.

`jax.nn.dot_product_attention` picks cuDNN flash attention on GPUs that have it
(`implementation="cudnn"`) and a fused XLA path elsewhere. With `decode=True` the
module keeps a KV cache in the `cache` collection, so generation attends to
earlier tokens without recomputing them.

Cross-attention under `decode=True` projects the context once: the first decode call
passes `context_BxSxD` (and its mask), whose keys and values are stored in the cache
as `context_key` / `context_value` / `context_mask`; later calls pass no context and
attend to the stored projection, so a decoding step costs O(S), not O(S * D^2).

Self-attention takes an additive bias of its logits (`bias_BxNxTxS`: T5's relative
positions); under decode, the bias of the new queries against key positions 0, 1, ...,
at least as many as the cache holds.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from bigmodels.nn.dense import Dense
from bigmodels.nn.positions import Rope, apply_rotary


class MultiHeadAttention(nn.Module):
    """Fewer key/value heads than query heads (`num_kv_heads`) is grouped-query attention
    (GQA, Llama 2 70B and later): each key/value head serves num_heads / num_kv_heads
    query heads, which shrinks the KV cache by that factor."""
    num_heads: int
    head_dim: int
    use_bias: bool = True
    causal: bool = True
    rotary: bool = False
    rope: Rope = Rope()
    num_kv_heads: int = 0               # 0 = num_heads (multi-head attention)
    qkv_bias: bool = False              # biases on q, k and v even without use_bias (Qwen2)
    init_std: float = 0.02
    out_init_std: float = 0.02
    implementation: str | None = None   # None = let JAX choose; "cudnn" | "xla"
    dtype: jnp.dtype = jnp.float32
    scale: float = 0.0                  # of the logits; 0 = 1/sqrt(head_dim), T5: 1

    def _project(self, x, count, name, heads=None, heads_axis="heads"):
        """x . W for `count` stacked projections of `heads` heads: B x T x count x N x H."""
        return Dense((count, heads or self.num_heads, self.head_dim),
                     ("embed", "qkv", heads_axis, "kv"),
                     use_bias=self.use_bias or self.qkv_bias, init_std=self.init_std,
                     dtype=self.dtype, name=name)(x)

    def _project_qkv(self, x):
        """q (B x T x N x H), k and v (B x T x K x H). Multi-head attention fuses the three
        into one matmul ("qkv"): fewer, larger GEMMs are faster everywhere. Under GQA the
        key/value heads are fewer, so q and the fused k, v are two projections."""
        kv_heads = self.num_kv_heads or self.num_heads
        if self.num_heads % kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={kv_heads}")
        if kv_heads == self.num_heads:
            return jnp.unstack(self._project(x, 3, "qkv"), axis=2)
        q = self._project(x, 1, "q")[:, :, 0]
        k, v = jnp.unstack(self._project(x, 2, "kv", kv_heads, "kv_heads"), axis=2)
        return q, k, v

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT=None, context_BxSxD=None, mask_BxS=None,
                 decode: bool = False, bias_BxNxTxS=None, segments_BxT=None):
        """Self-attention when `context_BxSxD` is None, else cross-attention to it.

        `mask_BxS` marks valid key positions (padding mask); causality is added
        for self-attention when `causal` is set. `bias_BxNxTxS` is added to the
        self-attention logits. `segments_BxT` (packed documents, an id each) keeps each
        query to the keys of its own segment.
        """
        d = x_BxTxD.shape[-1]   # the output width; heads x head_dim may differ (T5)
        # Under decode, a module whose cache holds a projected context is a
        # cross-attention even when this call passes no context (see the docstring).
        if context_BxSxD is not None or (decode and self.has_variable("cache",
                                                                      "context_key")):
            out = self._cross_attend(x_BxTxD, context_BxSxD, mask_BxS, decode)
        else:
            out = self._self_attend(x_BxTxD, positions_BxT, mask_BxS, decode, bias_BxNxTxS,
                                    segments_BxT)
        return Dense(d, ("heads", "kv", "embed"), in_axes=2, use_bias=self.use_bias,
                     init_std=self.out_init_std, dtype=self.dtype, name="out")(out)

    def _self_attend(self, x_BxTxD, positions_BxT, mask_BxS, decode: bool, bias=None,
                     segments_BxT=None):
        q, k, v = self._project_qkv(x_BxTxD)
        if self.rotary:
            q = apply_rotary(q, positions_BxT, self.rope)
            k = apply_rotary(k, positions_BxT, self.rope)
        if decode:
            if mask_BxS is not None or segments_BxT is not None:
                raise NotImplementedError("the self-attention KV cache is causal only; "
                                          "it takes no padding mask or segments")
            return self._attend_with_cache(q, k, v, positions_BxT, bias)
        mask = None if mask_BxS is None else mask_BxS[:, None, None, :]
        if segments_BxT is not None:   # B x 1 x T x S: same segment; every path takes it
            same = segments_BxT[:, None, :, None] == segments_BxT[:, None, None, :]
            mask = same if mask is None else mask & same
        return self._dot_product(q, k, v, bias=bias, mask=mask, is_causal=self.causal,
                                 implementation=self._implementation())

    def _cross_attend(self, x_BxTxD, context_BxSxD, mask_BxS, decode: bool):
        """Attention from x to the context, or (decode, no context) to the cached one."""
        q = self._project(x_BxTxD, 1, "q")[:, :, 0]
        if context_BxSxD is not None:
            k, v = jnp.unstack(self._project(context_BxSxD, 2, "kv"), axis=2)
        if decode:
            names = ("context_key", "context_value", "context_mask")
            if context_BxSxD is None:           # a later step: read the stored projection
                if mask_BxS is not None:
                    raise ValueError("cross-attention decode: a mask needs its context")
                k, v, mask_BxS = (self.get_variable("cache", n) for n in names)
            else:                               # the first step: store it
                if mask_BxS is None:
                    mask_BxS = jnp.ones(context_BxSxD.shape[:2], jnp.bool_)
                for name, value in zip(names, (k, v, mask_BxS.astype(jnp.bool_))):
                    self.put_variable("cache", name, value)
        mask = None if mask_BxS is None else mask_BxS[:, None, None, :]
        return self._dot_product(q, k, v, mask=mask, implementation=self._implementation())

    def _dot_product(self, q, k, v, bias=None, **kwargs):
        if bias is not None:
            bias = bias.astype(q.dtype)
        return jax.nn.dot_product_attention(q, k, v, bias=bias, scale=self.scale or None,
                                            **kwargs)

    def _implementation(self):
        """"cudnn" where a GPU is (a GPU config also compiles on CPU, e.g. for a dry
        run or a test, through JAX's own choice)."""
        if self.implementation == "cudnn" and jax.default_backend() != "gpu":
            return None
        return self.implementation

    def _attend_with_cache(self, q, k, v, positions_BxT, bias=None):
        """Writes k, v at the cache index and attends to every cached slot <= the query's.

        Left padding: a row whose positions lag their cache slots by p (the slot of its
        last new token minus that token's position) has p slots of padding in front, at
        negative positions, which no query attends to (bigmodels.generate's ragged batches).
        """
        is_initialized = self.has_variable("cache", "key")
        b, t, kv_heads, head_dim = k.shape
        # Heads-major, B x K x S x H: the attention's batched matmuls read it in place,
        # where slots-major would be transposed, the whole cache, at every step.
        cache_shape = (b, kv_heads, t, head_dim)
        cached_k = self.variable("cache", "key", jnp.zeros, cache_shape, k.dtype)
        cached_v = self.variable("cache", "value", jnp.zeros, cache_shape, v.dtype)
        index = self.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
        max_len = cached_k.value.shape[2]
        if bias is not None:     # keys 0 ... max_len - 1
            if bias.shape[-1] < max_len:
                raise ValueError(f"the attention bias covers {bias.shape[-1]} key positions; "
                                 f"the KV cache holds {max_len}")
            bias = bias[..., :max_len]
        if not is_initialized:   # the init call only allocates a max-length cache
            return self._dot_product(q, k, v, bias=bias, is_causal=True)
        start = index.value
        for cached, new in ((cached_k, k), (cached_v, v)):
            cached.value = jax.lax.dynamic_update_slice(
                cached.value, new.transpose(0, 2, 1, 3).astype(cached.value.dtype),
                (0, 0, start, 0))
        index.value = start + t
        query_slot_T = start + jnp.arange(t)
        key_slot_S = jnp.arange(max_len)
        first_B = (jnp.zeros((b,), jnp.int32) if positions_BxT is None
                   else query_slot_T[-1] - positions_BxT[:, -1])
        causal_TxS = key_slot_S[None, :] <= query_slot_T[:, None]
        # A padding query sees only itself: no row of the softmax is empty.
        own_TxS = key_slot_S[None, :] == query_slot_T[:, None]
        valid_BxS = key_slot_S[None, :] >= first_B[:, None]
        mask_BxTxS = causal_TxS[None] & (valid_BxS[:, None, :] | own_TxS[None])
        return self._attend_cached(q, cached_k.value, cached_v.value, mask_BxTxS, bias)

    def _attend_cached(self, q_BxTxNxH, k_BxKxSxH, v_BxKxSxH, mask_BxTxS, bias=None):
        """What `jax.nn.dot_product_attention`'s XLA path computes (f32 logits and
        softmax, grouped query heads), from the heads-major cache."""
        b, t, n, h = q_BxTxNxH.shape
        kv_heads, s = k_BxKxSxH.shape[1:3]
        q_BxTxKxGxH = q_BxTxNxH.reshape(b, t, kv_heads, n // kv_heads, h)
        logits_BxKxGxTxS = jnp.einsum("btkgh,bksh->bkgts", q_BxTxKxGxH, k_BxKxSxH,
                                      preferred_element_type=jnp.float32)
        logits_BxKxGxTxS *= jnp.float32(self.scale or 1.0 / np.sqrt(h))
        if bias is not None:
            bias = bias.astype(q_BxTxNxH.dtype).reshape(bias.shape[0], kv_heads, -1, t, s)
            logits_BxKxGxTxS = logits_BxKxGxTxS + bias
        logits_BxKxGxTxS = jnp.where(mask_BxTxS[:, None, None], logits_BxKxGxTxS,
                                     -0.7 * jnp.finfo(jnp.float32).max)
        probs = jax.nn.softmax(logits_BxKxGxTxS, axis=-1).astype(v_BxKxSxH.dtype)
        out_BxTxKxGxH = jnp.einsum("bkgts,bksh->btkgh", probs, v_BxKxSxH)
        return out_BxTxKxGxH.reshape(b, t, n, h)
