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


def test_bf16_contractions_accumulate_in_f32_and_keep_bf16():
    """bf16 products go through an f32-result dot (XLA:CPU's fast kernels) and come back
    as bf16: forward, both gradients, and logits against a table (`contract_transposed`)."""
    kx, kw, kg = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (4, 6, 64)).astype(jnp.bfloat16)
    w = jax.random.normal(kw, (64, 32)).astype(jnp.bfloat16)
    cot = jax.random.normal(kg, (4, 6, 32)).astype(jnp.bfloat16)
    f32 = lambda a: a.astype(jnp.float32)  # noqa: E731
    y = jax.jit(cpu_contract, static_argnums=2)(x, w, 1)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(f32(y), jnp.tensordot(f32(x), f32(w), 1), rtol=1e-2, atol=1e-2)
    dx, dw = jax.grad(lambda x, w: jnp.sum(f32(cpu_contract(x, w, 1) * cot)), (0, 1))(x, w)
    assert dx.dtype == dw.dtype == jnp.bfloat16
    ref_dx, ref_dw = jax.grad(lambda x, w: jnp.sum(jnp.tensordot(x, w, 1) * f32(cot)),
                              (0, 1))(f32(x), f32(w))
    np.testing.assert_allclose(f32(dx), ref_dx, rtol=2e-2, atol=5e-2)
    np.testing.assert_allclose(f32(dw), ref_dw, rtol=2e-2, atol=5e-2)
    table = w.T                                                   # 32 rows of 64
    logits = jax.jit(dense.contract_transposed)(x, table)
    assert logits.dtype == jnp.bfloat16 and logits.shape == (4, 6, 32)
    np.testing.assert_array_equal(f32(logits), f32(jax.jit(cpu_contract, static_argnums=2)(
        x, table.T, 1)))
