"""Post-training quantization with qwix, and the quantized params on disk and in memory.

`quantize(task, params, spec, example)` runs the task's init once under a qwix
`PtqProvider` (on abstract values: qwix learns which params feed which dot_general and
along which axes) and quantizes with `qwix.quantize_params`: each matched weight becomes
int8 or int4 values with one float32 scale per output channel. Lookup tables (params
named `embedding`: token and position embeddings, often the largest arrays of a small
LM) are read by row, not by dot_general, so qwix leaves them float; they are quantized
here too, one scale per row, and dequantized where they are read.

On disk (`stored`) every quantized weight is {"qvalue": int8 | int4, "scale": float32}
under the weight's own name (int4 packed two a byte by bigmodels.checkpoint). In memory
(`held`), for `serving`, a weight stays quantized: a qwix `WithAux(QArray)` that the
provider's dot_general reads, or for a table a `QArray` that `Ptq.nn_param`
dequantizes only inside the traced forward pass.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import qwix
from flax import linen as nn
# qwix 0.1.8 does not export these two: the param wrapper its PTQ dot_general reads,
# and what it records of how a weight was quantized.
from qwix._src.core.qarray import HowToQuantize
from qwix._src.providers.ptq import WithAux
from qwix._src.utils.flax_util import get_current_module_path

from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.names import path_name
from bigmodels.quant import spec as spec_lib
from bigmodels.quant.wrap import wrap

LOOKUPS = ("embedding",)
STORED = ("qvalue", "scale")


class Ptq(qwix.PtqProvider):
    """qwix's PTQ, plus quantized lookup tables and a record of convolutions."""

    def __init__(self, rules):
        super().__init__(rules)
        self.convs = set()

    def nn_param(self, module, name, *args, **kwargs):
        existing = module.get_variable("params", name)
        if isinstance(existing, qwix.QArray):            # a table: float where it is read
            return qwix.dequantize(existing)
        return super().nn_param(module, name, *args, **kwargs)

    def conv_general_dilated(self, lhs, rhs, *args, **kwargs):
        self.convs.add("/".join(map(str, get_current_module_path())))
        return super().conv_general_dilated(lhs, rhs, *args, **kwargs)


def provider(spec: spec_lib.QuantSpec) -> Ptq:
    return Ptq(spec_lib.rules(spec))


def _is_lookup(name: str, x, spec) -> bool:
    module, _, leaf = name.rpartition("/")
    return (leaf in LOOKUPS and np.ndim(x) >= 2 and jnp.issubdtype(x.dtype, jnp.floating)
            and spec_lib.matches(spec, module))


def _quantized(x) -> bool:
    return isinstance(x, (WithAux, qwix.QArray))


def quantize(task, params, spec: spec_lib.QuantSpec, example, rng=None):
    """(stored quantized params, notes): `params` (float, host or device) of `task`'s
    model quantized as `spec` says; `example` is a batch that `task.init` takes (only
    its shapes matter). Notes are lines for the user (convolutions left float)."""
    ptq = provider(spec)
    qtask = dataclasses.replace(task, model=wrap(task.model, ptq))
    rng = jax.random.key(0) if rng is None else rng
    abstract = nn.unbox(jax.eval_shape(qtask.init, rng, example)["params"])
    # float32 first: a scale takes its weight's dtype (a bfloat16 export's would be bf16).
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32)
                          if jnp.issubdtype(x.dtype, jnp.floating) else jnp.asarray(x),
                          params)
    try:
        quantized = qwix.quantize_params(params, abstract)
    except ValueError as e:
        raise BadInput(f"quantize: the params do not match the model of the run's config "
                       f"({e})") from None
    flat_float = {path_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(params)}
    stored = {}
    for path, x in jax.tree_util.tree_leaves_with_path(quantized, is_leaf=_quantized):
        name = path_name(path)
        if _is_lookup(name, flat_float[name], spec):
            w = flat_float[name]
            x = qwix.quantize(w, spec_lib.QTYPES[spec.weights],
                              channelwise_axes=tuple(range(w.ndim - 1)))
        if isinstance(x, WithAux):
            x = x.array
        stored[name] = ({"qvalue": np.asarray(x.qvalue), "scale": np.asarray(x.scale)}
                        if isinstance(x, qwix.QArray) else np.asarray(x))
    notes = []
    if ptq.convs and not spec.activations:
        notes.append(f"convolutions ({', '.join(sorted(ptq.convs))}) stay float32: qwix "
                     f"quantizes a convolution only with its activations (w8a8); pass "
                     f"--activations=int8 to quantize them too")
    return tree.unflatten(stored), notes


def _is_stored(node) -> bool:
    return isinstance(node, dict) and set(node) == set(STORED)


def _qarray(node) -> qwix.QArray:
    qvalue = jnp.asarray(node["qvalue"])
    return qwix.QArray(qvalue, jnp.asarray(node["scale"]), None,
                       spec_lib.QTYPES[str(qvalue.dtype)])


def held(stored, name: str = ""):
    """The stored params as the quantized model takes them, on the default device: a
    table as a QArray, any other quantized weight as WithAux(QArray)."""
    if _is_stored(stored):
        q = _qarray(stored)
        if name.rpartition("/")[2] in LOOKUPS:
            return q
        channels = [i for i, (n, s) in enumerate(zip(q.shape, q.scale.shape)) if n == s > 1]
        return WithAux(q, HowToQuantize(qtype=q.qtype, channelwise_axes=channels))
    if isinstance(stored, dict):
        return {k: held(v, f"{name}/{k}" if name else k) for k, v in stored.items()}
    return jnp.asarray(stored)


def serving(config, model, params):
    """(model, params) to run a run or export: for a quantized export (its config's
    quant.mode is "ptq") the model under qwix's PTQ provider and its params held
    quantized (`held`); anything else unchanged."""
    spec = spec_lib.from_config(config, "ptq")
    if spec is None:
        return model, params
    return wrap(model, provider(spec)), held(params)
