"""The hand-written backward of `cpu_contract` equals autodiff of a plain tensordot, and
it is used on the CPU only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels.nn import dense
from bigmodels.nn.dense import cpu_contract


@pytest.mark.parametrize("x_shape,w_shape,n_in", [((4, 6, 8), (8, 5), 1),
                                                  ((2, 6, 8), (8, 3, 2, 4), 1),
                                                  ((2, 6, 2, 4), (2, 4, 8), 2)])
def test_contract_gradients_match_autodiff(x_shape, w_shape, n_in):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x, w = jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)
    cot = jax.random.normal(kg, x_shape[:len(x_shape) - n_in] + w_shape[n_in:])
    ours = jax.grad(lambda x, w: jnp.sum(cpu_contract(x, w, n_in) * cot), (0, 1))(x, w)
    ref = jax.grad(lambda x, w: jnp.sum(jnp.tensordot(x, w, n_in) * cot), (0, 1))(x, w)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(cpu_contract, static_argnums=2)(x, w, n_in),
                               jnp.tensordot(x, w, n_in), rtol=1e-6)


def test_cpu_backward_is_chosen_on_cpu_only():
    assert dense.contraction("cpu") is dense.cpu_contract
    assert dense.contraction("gpu") is dense.tensordot
    assert dense.contraction("tpu") is dense.tensordot
    assert dense.contraction() is dense.cpu_contract        # the tests run on the CPU


def _dense_jaxpr():
    layer = dense.Dense(4, ("embed", "mlp"))
    x = jnp.ones((2, 3))
    params = layer.init(jax.random.key(0), x)
    return str(jax.make_jaxpr(layer.apply)(params, x))


def test_dense_traces_plain_tensordot_off_cpu(monkeypatch):
    assert "custom_vjp" in _dense_jaxpr()
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    jaxpr = _dense_jaxpr()
    assert "custom_vjp" not in jaxpr and "dot_general" in jaxpr
