"""KV-cache decoding equals full recomputation, token for token."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import generate, models
from bigmodels.models.gpt import gpt_config


@pytest.fixture(scope="module", params=["learned", "rotary"])
def model_and_params(request):
    cfg = gpt_config(vocab_size=40, num_layers=2, num_heads=2, embed_dim=32,
                     context_length=24, positions=request.param)
    model = models.build(cfg)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    return model, params


def test_cached_logits_equal_full_forward(model_and_params):
    model, params = model_and_params
    tokens = jax.random.randint(jax.random.key(1), (2, 20), 0, 40)
    full = jax.jit(model.apply)({"params": params}, tokens)
    cache = generate._empty_cache(model, 2)
    decode = jax.jit(lambda v, x, pos: model.apply(v, x, pos, decode=True, mutable=["cache"]))
    logits, state = decode({"params": params, "cache": cache}, tokens[:, :12],
                           jnp.broadcast_to(jnp.arange(12), (2, 12)))
    pieces = [logits]
    for t in range(12, 20):
        logits, state = decode({"params": params, **state}, tokens[:, t:t + 1],
                               jnp.full((2, 1), t))
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=1.0),
                                      dict(temperature=0.8, top_k=5),
                                      dict(temperature=1.0, top_p=0.9)])
def test_cached_generation_equals_recomputation(model_and_params, sampling):
    model, params = model_and_params
    prompt = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    cached = generate.generate(model, params, prompt, 15, seed=3, **sampling)
    slow = generate.generate_uncached(model, params, prompt, 15, seed=3, **sampling)
    np.testing.assert_array_equal(cached, slow)


def test_generation_beyond_the_context_window(model_and_params):
    model, params = model_and_params
    out = generate.generate(model, params, np.array([[1, 2, 3]]), 60, temperature=0.0)
    assert out.shape == (1, 63)


def test_top_k_one_is_greedy():
    logits = jax.random.normal(jax.random.key(0), (4, 30))
    picked = generate.sample_logits(logits, jax.random.key(1), temperature=1.0, top_k=1)
    np.testing.assert_array_equal(picked, jnp.argmax(logits, -1))
