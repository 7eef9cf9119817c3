"""Quantization with qwix: post-training (bigmodels.quantize, `bigmodels.export
--dtype=int8|int4`) and quantization-aware training (regimes/qat.py).

    serving(config, model, params) -> (model, params)    what loaders call: a quantized
        export's model under qwix and its params held quantized; others unchanged
    quantize(task, params, spec, example) -> (stored params, notes)
    qat_model(model, spec)                                fake quantization (QtProvider)
"""

import qwix

from bigmodels.quant.ptq import held, quantize, serving
from bigmodels.quant.spec import QTYPES, QuantSpec, check, from_config, is_quantized, rules
from bigmodels.quant.wrap import wrap


def qat_model(model, spec: QuantSpec):
    """`model` with fake quantization in its forward pass (straight-through gradients):
    qwix's QtProvider with `spec`'s rules."""
    return wrap(model, qwix.QtProvider(rules(spec, rule=qwix.QtRule)))


__all__ = ["QTYPES", "QuantSpec", "check", "from_config", "held", "is_quantized",
           "qat_model", "quantize", "rules", "serving", "wrap"]
