"""The attention weights of every `MultiHeadAttention` in a model, for looking at them.

`MultiHeadAttention` hands its logits to `jax.nn.dot_product_attention`, which never
returns the softmax (on a GPU it may never form it). To look at the weights we do not
change the model: `attention_maps` runs it under `flax.linen.intercept_methods`, and
every time an attention module is called, recomputes that call's weights from the
same inputs and the same params, through the module's own projections
(`_project_qkv`, rotary, masks, segments, the logit bias, the logit scale):

    logits, maps = attention_maps(model, {"params": params}, tokens_BxT)
    maps["block_0/attn"]            # B x N x T x S, each row sums to 1

Keys are the modules' paths ("encoder/block_1/cross_attn" in a T5). Self- and
cross-attention both work, with grouped-query heads repeated to one map per query
head. Not under decode (the KV cache) or `scan_layers` (the blocks of an nn.scan are
traced once, not once per layer): call the model as in training.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.attention import MultiHeadAttention
from bigmodels.nn.positions import apply_rotary


class AttentionWeights(MultiHeadAttention):
    """A `MultiHeadAttention` whose call returns its softmax weights (B x N x T x S)
    instead of its output; it reads the same params (its "out" projection is unused)."""

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT=None, context_BxSxD=None, mask_BxS=None,
                 decode: bool = False, bias_BxNxTxS=None, segments_BxT=None):
        if decode:
            raise ValueError("attention maps: call the model without decode (no KV cache)")
        if context_BxSxD is None:       # self-attention, as _self_attend computes it
            q, k, _ = self._project_qkv(x_BxTxD)
            if self.rotary:
                q = apply_rotary(q, positions_BxT, self.rope)
                k = apply_rotary(k, positions_BxT, self.rope)
        else:                           # cross-attention, as _cross_attend computes it
            q = self._project(x_BxTxD, 1, "q")[:, :, 0]
            k, _ = jnp.unstack(self._project(context_BxSxD, 2, "kv"), axis=2)
            bias_BxNxTxS = segments_BxT = None
        # Grouped-query attention: each key head serves num_heads / kv_heads query heads.
        k = jnp.repeat(k, q.shape[2] // k.shape[2], axis=2)
        # The order of jax.nn.dot_product_attention: scale, add the bias, mask, softmax.
        logits_BxNxTxS = jnp.einsum("btnh,bsnh->bnts", q, k,
                                    preferred_element_type=jnp.float32)
        logits_BxNxTxS *= self.scale or 1.0 / jnp.sqrt(jnp.float32(q.shape[-1]))
        if bias_BxNxTxS is not None:
            logits_BxNxTxS += bias_BxNxTxS.astype(jnp.float32)
        t, s = logits_BxNxTxS.shape[-2:]
        keep_BxNxTxS = jnp.ones((1, 1, t, s), jnp.bool_)
        if mask_BxS is not None:
            keep_BxNxTxS = keep_BxNxTxS & mask_BxS.astype(jnp.bool_)[:, None, None, :]
        if segments_BxT is not None:
            keep_BxNxTxS = keep_BxNxTxS & (segments_BxT[:, None, :, None]
                                           == segments_BxT[:, None, None, :])
        if context_BxSxD is None and self.causal:
            keep_BxNxTxS = keep_BxNxTxS & jnp.tril(jnp.ones((t, s), jnp.bool_))
        logits_BxNxTxS = jnp.where(keep_BxNxTxS, logits_BxNxTxS,
                                   -0.7 * jnp.finfo(jnp.float32).max)
        return jax.nn.softmax(logits_BxNxTxS, axis=-1)


def _weights_module(attention: MultiHeadAttention) -> AttentionWeights:
    fields = {f.name: getattr(attention, f.name)
              for f in dataclasses.fields(MultiHeadAttention)
              if f.init and f.name not in ("parent", "name")}
    return AttentionWeights(**fields)


def attention_maps(model: nn.Module, variables, *args, jit: bool = True, **kwargs):
    """(the output of `model.apply(variables, *args, **kwargs)`, {path: weights
    B x N x T x S} of every attention call in it). `kwargs` may hold `method=`; they
    are static (compiled in) under `jit`."""
    if getattr(model, "scan_layers", False):
        raise ValueError("attention maps: scan_layers=True is not supported; "
                         "unstack_layers the params into a model without it")

    def run(variables, args):
        maps = {}

        def record(next_fun, call_args, call_kwargs, context):
            out = next_fun(*call_args, **call_kwargs)
            module = context.module
            if (context.method_name == "__call__" and isinstance(module, MultiHeadAttention)
                    and not isinstance(module, AttentionWeights)):
                path = "/".join(module.path)
                if path in maps:
                    raise ValueError(f"attention maps: {path} is called more than once")
                maps[path] = _weights_module(module).apply(
                    {"params": module.variables["params"]}, *call_args, **call_kwargs)
            return out

        with nn.intercept_methods(record):
            out = model.apply(variables, *args, **kwargs)
        return out, maps

    return jax.jit(run)(variables, args) if jit else run(variables, args)
