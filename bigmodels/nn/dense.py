"""Dense layers whose weight gradient is fast on XLA:CPU.

`contract(x, w, n_in)` is `jnp.tensordot(x, w, n_in)` with a hand-written backward
pass. The weight gradient x^T . g needs one of its operands transposed. Left alone,
XLA:CPU may transpose the larger one and fuse the transpose into the kernel that
produces it (e.g. the GELU or its backward), which then runs as a strided,
unvectorised loop: in the nanoGPT-sized GPT that was about a fifth of the step. The
backward below transposes whichever of x and g is smaller, and so does the same
arithmetic as autodiff in fewer, cheaper kernels (tests/test_dense.py checks equality).

It was measured on XLA:CPU only, so it applies only there: `contract` picks it when the
default backend is the CPU at trace time, and elsewhere (GPU, TPU) traces a plain
tensordot left to autodiff, as flax's own Dense does (`contraction`).

Within `plain_contraction()` (set by bigmodels.quant around a qwix-wrapped model),
`contract` is one bare `jax.lax.dot_general`: qwix intercepts that call, and its weight
may then be a quantized array, or be differentiated by qwix's own rule (QAT), which a
custom_vjp around it would hide.
"""

import contextlib
import contextvars
import functools
import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.initializers import normal, zeros


def tensordot(x, w, n_in: int):
    """Contracts the last `n_in` axes of x with the first `n_in` axes of w."""
    return jnp.tensordot(x, w, axes=n_in)


def _cpu_tensordot(a, b, axes):
    """`jnp.tensordot` whose low-precision (bf16, f16) products accumulate into an f32
    result, cast back: XLA:CPU sends only that form to its fast (AMX/AVX512) matmul
    kernels; a bf16 result type takes a generic loop about 7x slower (benchmarks/
    RESULTS.md, "bf16 on XLA:CPU")."""
    dtype = jnp.result_type(a, b)
    if jnp.finfo(dtype).bits >= 32:
        return jnp.tensordot(a, b, axes=axes)
    return jnp.tensordot(a, b, axes=axes, preferred_element_type=jnp.float32).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def cpu_contract(x, w, n_in: int):
    """`tensordot` with the backward pass below (tuned for XLA:CPU)."""
    return _cpu_tensordot(x, w, n_in)


def _contract_fwd(x, w, n_in):
    return cpu_contract(x, w, n_in), (x, w)


def _contract_bwd(n_in, residuals, g):
    x, w = residuals
    n_batch = x.ndim - n_in
    batch = tuple(range(n_batch))
    dx = _cpu_tensordot(g, w, (tuple(range(n_batch, g.ndim)), tuple(range(n_in, w.ndim))))
    if math.prod(x.shape[n_batch:]) <= math.prod(g.shape[n_batch:]):
        x_t = jnp.transpose(x, tuple(range(n_batch, x.ndim)) + batch)        # in..., batch...
        dw = _cpu_tensordot(x_t, g, (tuple(range(n_in, x.ndim)), batch))
    else:
        n_out = g.ndim - n_batch
        g_t = jnp.transpose(g, tuple(range(n_batch, g.ndim)) + batch)        # out..., batch...
        dw_t = _cpu_tensordot(g_t, x, (tuple(range(n_out, g.ndim)), batch))
        dw = jnp.transpose(dw_t, tuple(range(n_out, n_out + n_in)) + tuple(range(n_out)))
    return dx.astype(x.dtype), dw.astype(w.dtype)


cpu_contract.defvjp(_contract_fwd, _contract_bwd)


_PLAIN = contextvars.ContextVar("bigmodels_plain_contraction", default=False)


@contextlib.contextmanager
def plain_contraction():
    """While tracing inside it, `contract` is a bare dot_general (see the docstring)."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def dot_general(x, w, n_in: int):
    """`tensordot` as one `jax.lax.dot_general` call, looked up at call time (where qwix
    intercepts it); `w` may be an array-like that only dot_general's interceptor reads."""
    contracting = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
    return jax.lax.dot_general(x, w, (contracting, ((), ())))


def contraction(backend: str | None = None):
    """The contraction for `backend` (default: JAX's default backend): `cpu_contract` on
    the CPU, a plain `tensordot` elsewhere, `dot_general` within `plain_contraction`."""
    if _PLAIN.get():
        return dot_general
    backend = jax.default_backend() if backend is None else backend
    return cpu_contract if backend == "cpu" else tensordot


def contract(x, w, n_in: int):
    """`tensordot`, with the CPU-tuned backward when traced for the CPU."""
    return contraction()(x, w, n_in)


def contract_transposed(x, w):
    """x . w^T, contracting x's last axis with w's last axis (e.g. logits against an
    embedding table). In bf16 on XLA:CPU the table is read in place by one dot_general
    (9x faster than a transposed copy); elsewhere it is `contract(x, w.T, 1)`."""
    low_precision = jnp.finfo(jnp.result_type(x, w)).bits < 32
    if _PLAIN.get() or not low_precision or jax.default_backend() != "cpu":
        return contract(x, w.T, 1)
    dims = (((x.ndim - 1,), (w.ndim - 1,)), ((), ()))
    return jax.lax.dot_general(x, w, dims, preferred_element_type=jnp.float32).astype(x.dtype)


class Dense(nn.Module):
    """y = x . kernel (+ bias), contracting x's last `in_axes` axes.

    `features` may be a tuple (e.g. (3, heads, head_dim) for a fused QKV projection);
    `kernel_axes` names every kernel axis for sharding (input axes first).
    """
    features: int | tuple
    kernel_axes: tuple
    in_axes: int = 1
    use_bias: bool = True
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        shape = x.shape[x.ndim - self.in_axes:] + features
        kernel = self.param("kernel", normal(self.init_std, self.kernel_axes), shape)
        # Cast only when needed: a quantized kernel (qwix PTQ) has no working astype.
        if kernel.dtype != self.dtype:
            kernel = kernel.astype(self.dtype)
        y = contract(x.astype(self.dtype), kernel, self.in_axes)
        if self.use_bias:
            bias = self.param("bias", zeros(self.kernel_axes[self.in_axes:]), features)
            y = y + bias.astype(self.dtype)
        return y
