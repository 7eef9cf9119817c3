"""The hand-written backward of `contract` equals autodiff of a plain tensordot."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels.nn.dense import contract


@pytest.mark.parametrize("x_shape,w_shape,n_in", [((4, 6, 8), (8, 5), 1),
                                                  ((2, 6, 8), (8, 3, 2, 4), 1),
                                                  ((2, 6, 2, 4), (2, 4, 8), 2)])
def test_contract_gradients_match_autodiff(x_shape, w_shape, n_in):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x, w = jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)
    cot = jax.random.normal(kg, x_shape[:len(x_shape) - n_in] + w_shape[n_in:])
    ours = jax.grad(lambda x, w: jnp.sum(contract(x, w, n_in) * cot), (0, 1))(x, w)
    ref = jax.grad(lambda x, w: jnp.sum(jnp.tensordot(x, w, n_in) * cot), (0, 1))(x, w)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(contract, static_argnums=2)(x, w, n_in),
                               jnp.tensordot(x, w, n_in), rtol=1e-6)
