"""GPT blocks: logical axes on every parameter, and each variant builds and runs."""

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn

from bigmodels import models
from bigmodels.models.gpt import gpt_config


def test_every_parameter_has_logical_axes():
    model = models.build(gpt_config(vocab_size=30, num_layers=2, embed_dim=32,
                                    tie_embeddings=False))
    boxed = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    leaves = jax.tree.leaves(boxed["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
    assert all(len(x.names) == x.value.ndim for x in leaves)


@pytest.mark.parametrize("variant", [
    dict(positions="rotary"), dict(norm="rmsnorm"), dict(use_bias=False),
    dict(tie_embeddings=False), dict(dropout=0.2), dict(attention_impl="xla")])
def test_variants_run(variant):
    model = models.build(gpt_config(vocab_size=30, num_layers=1, embed_dim=32, **variant))
    tokens = jnp.ones((2, 8), jnp.int32)
    params = model.init(jax.random.key(0), tokens)["params"]
    logits = model.apply({"params": params}, tokens, train=True,
                         rngs={"dropout": jax.random.key(1)})
    assert logits.shape == (2, 8, 30) and logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))


def test_causality():
    model = models.build(gpt_config(vocab_size=30, num_layers=2, embed_dim=32))
    a = jnp.array([[1, 2, 3, 4, 5, 6]])
    b = a.at[0, 4].set(9)
    params = model.init(jax.random.key(0), a)["params"]
    la, lb = model.apply({"params": params}, a), model.apply({"params": params}, b)
    assert jnp.allclose(la[:, :4], lb[:, :4]) and not jnp.allclose(la[:, 4:], lb[:, 4:])
