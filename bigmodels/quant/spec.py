"""What to quantize and to what: `QuantSpec`, read from a config's `quant` block or from
the flags of `bigmodels.quantize`, and the qwix rules it stands for.

    weights      int8 | int4: the qtype of weights (per output channel, absmax)
    activations  "" (weights only) | int8: activations quantized on the fly (dynamic)
    include      regex searched in each module's path (block_0/mlp/wi); "" = all
    exclude      regex of module paths left in float; "" = none

qwix quantizes a convolution only with weights and activations of one type (w8a8), so
convolutions get the activations' type for both, and stay float without activations.
"""

import re
from typing import NamedTuple

import jax.numpy as jnp
import qwix

from bigmodels.errors import BadInput

QTYPES = {"int8": jnp.int8, "int4": jnp.int4}
ACTIVATIONS = ("", "int8")
# config.quant.mode: "" trains as usual, "qat" with fake quantization (regimes/qat.py);
# "ptq" marks a quantized export (bigmodels.quantize), which holds quantized params.
MODES = ("", "qat", "ptq")
CONV = "conv_general_dilated"


class QuantSpec(NamedTuple):
    weights: str = "int8"
    activations: str = ""
    include: str = ""
    exclude: str = ""

    def as_config(self, mode: str) -> dict:
        return dict(mode=mode, **self._asdict())


def check(spec: QuantSpec, prefix: str = "quant.") -> QuantSpec:
    """`spec` itself; BadInput naming the key (`prefix` + field) at fault."""
    if spec.weights not in QTYPES:
        raise BadInput(f"{prefix}weights: unknown qtype {spec.weights!r} (known: "
                       f"{', '.join(QTYPES)})")
    if spec.activations not in ACTIVATIONS:
        raise BadInput(f"{prefix}activations: unknown qtype {spec.activations!r} (known: "
                       f"'' for weights only, int8)")
    for key in ("include", "exclude"):
        try:
            re.compile(getattr(spec, key))
        except re.error as e:
            raise BadInput(f"{prefix}{key}: bad regex {getattr(spec, key)!r}: {e}") from None
    return spec


def from_config(config, mode: str):
    """The checked QuantSpec of `config.quant` if its mode is `mode`, else None (also
    for configs from before the `quant` block existed)."""
    cfg = config.get("quant")
    if cfg is None:
        return None
    if cfg.get("mode", "") not in MODES:
        raise BadInput(f"quant.mode: unknown mode {cfg.mode!r} (known: '' = off, qat; "
                       f"ptq marks a quantized export)")
    if cfg.get("mode", "") != mode:
        return None
    return check(QuantSpec(cfg.weights, cfg.activations, cfg.include, cfg.exclude))


def is_quantized(config) -> bool:
    """Whether `config` is a quantized export's (its params are held quantized)."""
    cfg = config.get("quant")
    return cfg is not None and cfg.get("mode", "") == "ptq"


def _search(regex: str) -> str:
    """A `re.search` of `regex` as the full match qwix applies to module paths."""
    return f".*(?:{regex}).*"


def rules(spec: QuantSpec, rule=qwix.QuantizationRule) -> list:
    """qwix rules, first match wins: excluded paths float, convolutions w8a8 (or float
    without activations), every other dot_general and einsum weight `spec.weights`."""
    act = QTYPES.get(spec.activations)
    out = []
    if spec.exclude:
        out.append(rule(module_path=_search(spec.exclude)))
    out.append(rule(module_path=_search(spec.include), op_names=(CONV,), weight_qtype=act,
                    act_qtype=act))
    out.append(rule(module_path=_search(spec.include), weight_qtype=QTYPES[spec.weights],
                    act_qtype=act))
    return out


def matches(spec: QuantSpec, module_path: str) -> bool:
    """Whether `spec` quantizes the module at `module_path` (the rules' test, for the
    lookup tables that qwix does not see)."""
    if spec.exclude and re.search(spec.exclude, module_path):
        return False
    return re.search(spec.include, module_path) is not None
