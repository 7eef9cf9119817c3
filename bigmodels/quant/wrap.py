"""A model under a qwix provider: `wrap(model, provider)`.

qwix intercepts `jax.lax.dot_general` and `conv_general_dilated` inside the methods it
wraps. Each of them also runs within `plain_contraction()`, so our Dense hands qwix a
bare dot_general (bigmodels/nn/dense.py) rather than its CPU-tuned custom_vjp, which
would hide the weight from qwix's own gradient (QAT) and cannot take a quantized one.
"""

import qwix

from bigmodels.nn.dense import plain_contraction

# The methods the codebase applies a model through (`model.apply(..., method=...)`):
# the forward pass, seq2seq's encode/decode, a GAN's generate/discriminate.
APPLY_METHODS = ("__call__", "encode", "decode", "generate", "discriminate")


def _plain(method):
    def call(self, *args, **kwargs):
        with plain_contraction():
            return method(self, *args, **kwargs)
    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


def wrap(model, provider):
    """`model` (a Linen module) quantized by `provider`, in each of its APPLY_METHODS."""
    methods = [m for m in APPLY_METHODS if callable(getattr(type(model), m, None))]
    quantized = qwix.quantize_model(model, provider, methods=methods)
    cls = type(quantized)
    quantized.__class__ = type(cls.__name__, (cls,), {m: _plain(getattr(cls, m))
                                                      for m in methods})
    return quantized
