"""bigmodels.nn.attention_maps: the recomputed weights are the ones the module used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from bigmodels.models.gpt import GPT
from bigmodels.nn.attention import MultiHeadAttention
from bigmodels.nn.attention_maps import attention_maps


def _random_params(module, *args, **kwargs):
    """Params of the module's shapes drawn with numpy: no init program to compile."""
    shapes = nn.unbox(jax.eval_shape(module.init, jax.random.key(0), *args, **kwargs))
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes["params"])


def _output_from_weights(params, x_BxTxD, weights_BxNxTxS, context_BxSxD=None):
    """The module's output rebuilt from the weights: weights . v, then the out projection."""
    if context_BxSxD is None:
        kernel = params["qkv"]["kernel"][:, 2] if "qkv" in params else params["kv"]["kernel"][:, 1]
        source = x_BxTxD
    else:
        kernel, source = params["kv"]["kernel"][:, 1], context_BxSxD
    v_BxSxKxH = jnp.einsum("bsd,dkh->bskh", source, kernel)
    n, k = weights_BxNxTxS.shape[1], v_BxSxKxH.shape[2]
    v_BxSxNxH = jnp.repeat(v_BxSxKxH, n // k, axis=2)
    mixed_BxTxNxH = jnp.einsum("bnts,bsnh->btnh", weights_BxNxTxS, v_BxSxNxH)
    return jnp.einsum("btnh,nhd->btd", mixed_BxTxNxH, params["out"]["kernel"])


@pytest.mark.parametrize("kind", ["causal_rotary_gqa", "padding_segments_bias", "cross"])
def test_weights_rebuild_the_module_output(kind):
    b, t, s, d = 2, 5, 4, 8
    rng = np.random.default_rng(1)
    x_BxTxD = rng.normal(size=(b, t, d)).astype(np.float32)
    kwargs, context = {}, None
    if kind == "causal_rotary_gqa":
        module = MultiHeadAttention(num_heads=4, head_dim=2, num_kv_heads=2, use_bias=False,
                                    rotary=True)
        kwargs["positions_BxT"] = jnp.broadcast_to(jnp.arange(t) + 3, (b, t))
    elif kind == "padding_segments_bias":
        module = MultiHeadAttention(num_heads=2, head_dim=4, use_bias=False, causal=False,
                                    scale=0.7)
        kwargs["mask_BxS"] = jnp.arange(t)[None, :] < jnp.array([[5], [3]])
        kwargs["segments_BxT"] = jnp.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
        kwargs["bias_BxNxTxS"] = rng.normal(size=(b, 2, t, t)).astype(np.float32)
    else:
        module = MultiHeadAttention(num_heads=2, head_dim=4, use_bias=False)
        context = rng.normal(size=(b, s, d)).astype(np.float32)
        kwargs["context_BxSxD"] = context
        kwargs["mask_BxS"] = jnp.arange(s)[None, :] < jnp.array([[4], [2]])
    # Unit-normal weights make peaked softmaxes, where a wrong mask would show.
    params = _random_params(module, x_BxTxD, **kwargs)
    out, maps = attention_maps(module, {"params": params}, x_BxTxD, **kwargs)
    assert list(maps) == [""]
    weights_BxNxTxS = maps[""]
    assert weights_BxNxTxS.shape == (b, module.num_heads, t, s if context is not None else t)
    np.testing.assert_allclose(weights_BxNxTxS.sum(-1), 1.0, rtol=1e-5)
    rebuilt = _output_from_weights(params, x_BxTxD, weights_BxNxTxS, context)
    np.testing.assert_allclose(rebuilt, out, rtol=1e-4, atol=1e-4)


def test_every_layer_of_a_gpt():
    model = GPT(vocab_size=11, num_layers=2, num_heads=2, embed_dim=8, context_length=6)
    tokens_BxT = jnp.array([[1, 2, 3, 4, 5, 6]])
    params = _random_params(model, tokens_BxT)
    logits, maps = attention_maps(model, {"params": params}, tokens_BxT)
    assert sorted(maps) == ["block_0/attn", "block_1/attn"]
    np.testing.assert_allclose(logits, model.apply({"params": params}, tokens_BxT), rtol=1e-5)
    weights = maps["block_1/attn"][0]                     # N x T x S
    assert weights.shape == (2, 6, 6)
    np.testing.assert_array_equal(np.triu(np.asarray(weights), 1), 0.0)   # causal
    with pytest.raises(ValueError, match="scan_layers"):
        attention_maps(model.clone(scan_layers=True), {"params": params}, tokens_BxT)
