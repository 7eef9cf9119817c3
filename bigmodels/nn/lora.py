"""LoRA (Hu et al. 2021) and QLoRA (Dettmers et al. 2023) on any model built of `Dense`.

`LoraModel(model, spec)` stands in for `model` wherever a task uses it (`init`,
`apply`, attributes). A flax method interceptor on every `Dense` whose module path
(e.g. `block_0/attn/qkv`) matches `spec.targets` adds

    y = x . W + (alpha / rank) * (dropout(x) . A) . B

with A (inputs... x rank) and B (rank x features...) created in that Dense's own scope
as `lora_a` and `lora_b`; B starts at zero, so at init the model is its base exactly.
Both carry the kernel's logical axes on their input or output side (the rank axis is
unsharded), so they shard like the layer they adapt.

Every other param is the frozen base. Its Dense kernels and embedding tables are held
as `spec.base_dtype` (bigmodels/nn/quantize.py) and dequantized to float32 inside each
call, never stored that way.
"""

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn import quantize
from bigmodels.nn.dense import Dense, contract
from bigmodels.nn.initializers import normal, zeros

ADAPTERS = ("lora_a", "lora_b")


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    targets: str                  # regex searched in each Dense's module path
    dropout: float = 0.0
    base_dtype: str = "float32"   # float32 | bfloat16 | int8 | nf4

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def _delta(module: Dense, x, y, spec: LoraSpec):
    """(alpha / rank) * (dropout(x) . A) . B, in the module's scope and dtype."""
    n_in = module.in_axes
    in_shape = x.shape[x.ndim - n_in:]
    features = y.shape[x.ndim - n_in:]
    axes = tuple(module.kernel_axes)
    a = module.param("lora_a", normal(1 / math.sqrt(math.prod(in_shape)),
                                      axes[:n_in] + (None,)), in_shape + (spec.rank,))
    b = module.param("lora_b", zeros((None,) + axes[n_in:]), (spec.rank,) + features)
    if spec.dropout > 0 and module.has_rng("dropout"):      # only in training
        keep = jax.random.bernoulli(module.make_rng("dropout"), 1 - spec.dropout, x.shape)
        x = jnp.where(keep, x / (1 - spec.dropout), 0)
    h = contract(x.astype(module.dtype), a.astype(module.dtype), n_in)
    return (spec.scale * contract(h, b.astype(module.dtype), 1)).astype(y.dtype)


def interceptor(spec: LoraSpec, layers: dict | None = None):
    """The interceptor adding adapters to matching Dense calls. `layers`, if given, is
    filled with {module path: (input axes, kernel dims)} of every Dense called."""
    targets = re.compile(spec.targets)

    def intercept(next_fun, args, kwargs, context):
        module = context.module
        if not isinstance(module, Dense) or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        x = args[0]
        y = next_fun(*args, **kwargs)
        path = "/".join(module.path)
        if layers is not None:
            layers[path] = (module.in_axes, y.ndim - x.ndim + 2 * module.in_axes)
        if not targets.search(path):
            return y
        return y + _delta(module, x, y, spec)

    return intercept


# --- param trees: nested dicts whose quantized weights are dicts of arrays ------------

def _walk(tree, fn, path=()):
    """`fn(path, leaf)` on every weight (a quantized dict counts as one) of `tree`."""
    if isinstance(tree, dict) and not quantize.is_quantized(tree):
        return {k: _walk(v, fn, path + (k,)) for k, v in tree.items()}
    return fn(path, tree)


def weights(tree) -> dict:
    """{"block_0/attn/qkv/kernel": weight} with each quantized weight one entry."""
    out = {}
    _walk(tree, lambda path, w: out.__setitem__("/".join(path), w))
    return out


def split(params) -> tuple[dict, dict]:
    """(adapters, base): the same nesting, each holding only its own weights."""
    def part(tree, want):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict) and not quantize.is_quantized(v):
                sub = part(v, want)
                if sub:
                    out[k] = sub
            elif (k in ADAPTERS) == want:
                out[k] = v
        return out
    return part(params, True), part(params, False)


def join(a: dict, b: dict) -> dict:
    """The union of two trees of disjoint weights (the inverse of `split`)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = join(out[k], v) if k in out and not quantize.is_quantized(v) else v
    return out


def dequantize(params):
    """The params with every base weight as float32 (adapters as they are)."""
    return _walk(params, lambda path, w: w if path[-1] in ADAPTERS else quantize.dequantize(w))


def float_shapes(params):
    """The float32 shapes of the base weights, adapters left out: what the model's
    params would be without LoRA (for FLOP counts and checkpoint matching)."""
    _, base = split(params)
    return _walk(base, lambda _, w: jax.ShapeDtypeStruct(quantize.float_shape(w), jnp.float32))


def quantize_base(params, kind: str, layers: dict):
    """Boxed params of `init` with the base's matrices held as `kind`: every Dense
    kernel (`layers`), its int8 scale spanning its input axes (after any stacked-layer
    axes), and every embedding table, one scale per row. Biases and norms (a sliver of
    the bytes) stay float32."""
    def hold(path, box):
        w = nn.meta.unbox(box)
        n_in, kernel_dims = layers.get("/".join(path[:-1]), (0, 0))
        if path[-1] == "kernel" and kernel_dims:
            lead = w.ndim - kernel_dims
            reduce_axes = tuple(range(lead, lead + n_in))
        elif path[-1] == "embedding":
            reduce_axes = (w.ndim - 1,)
        else:
            return box
        if kind == "float32":
            return box
        held = quantize.quantize(w, kind, reduce_axes)
        return _boxed_like(box, held, reduce_axes)
    return _walk(params, hold)


def _boxed_like(box, held, reduce_axes):
    """`held` with the logical axis names of `box`: each array keeps the names of the
    axes it still spans (a scale's size-1 or per-block axes are unsharded)."""
    if not isinstance(box, nn.LogicallyPartitioned):
        return held
    names = tuple(box.names)
    if not quantize.is_quantized(held):
        return box.replace(value=held)
    if "int8" in held:
        scale_names = tuple(None if i in reduce_axes else n for i, n in enumerate(names))
        return {"int8": box.replace(value=held["int8"]),
                "scale": box.replace(value=held["scale"], names=scale_names)}
    return {"nf4": box.replace(value=held["nf4"]),
            "scale": box.replace(value=held["scale"], names=names[:-1] + (None,))}


def merge(params, scale: float):
    """Float32 params without adapters: each adapted kernel becomes W + scale * A . B
    (stacked layers too). What a LoRA run exports."""
    params = dequantize(params)

    def merged(tree):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict):
                out[k] = merged(v)
            elif k not in ADAPTERS:
                out[k] = v
        if "lora_a" in tree:
            a, b, w = tree["lora_a"], tree["lora_b"], out["kernel"]
            lead = a.ndim + b.ndim - 2 - w.ndim        # stacked-layer axes
            product = lambda a, b: jnp.tensordot(a, b, 1)   # noqa: E731
            for _ in range(lead):
                product = jax.vmap(product)
            out["kernel"] = w + scale * product(jnp.asarray(a, jnp.float32),
                                                jnp.asarray(b, jnp.float32))
        return out
    return merged(params)


@dataclasses.dataclass(frozen=True)
class LoraModel:
    """`model` with adapters, over a base held as `spec.base_dtype` (module docstring)."""
    model: nn.Module
    spec: LoraSpec

    def init(self, rngs, *args, **kwargs):
        layers = {}
        with nn.intercept_methods(interceptor(self.spec, layers)):
            variables = self.model.init(rngs, *args, **kwargs)
        params = quantize_base(variables["params"], self.spec.base_dtype, layers)
        return {**variables, "params": params}

    def apply(self, variables, *args, **kwargs):
        variables = {**variables, "params": dequantize(variables["params"])}
        with nn.intercept_methods(interceptor(self.spec)):
            return self.model.apply(variables, *args, **kwargs)

    def train_flops_per_token(self, params, *args):
        return self.model.train_flops_per_token(float_shapes(params), *args)

    def train_flops_per_example(self, params, *args):
        return self.model.train_flops_per_example(float_shapes(params), *args)

    def __getattr__(self, name):
        # Everything else (context_length, vocab_size, methods) is the model's.
        if name.startswith("__") or name in ("model", "spec"):
            raise AttributeError(name)
        return getattr(self.model, name)
