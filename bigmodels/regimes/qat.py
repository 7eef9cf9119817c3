"""Quantization-aware training: fake quantization in the forward pass (qwix QtProvider).

    --config.quant.mode=qat [--config.quant.weights=int8|int4
     --config.quant.activations=int8 --config.quant.include=<regex>
     --config.quant.exclude=<regex>]

`wrap_task` puts the task's model under qwix's QtProvider: each matched weight (and,
with `activations`, each matched dot_general's inputs) is quantized and dequantized in
the forward pass, with straight-through gradients, so the model learns weights that
survive rounding. The params stay float32 and are saved and exported as usual; after
training, `python -m bigmodels.quantize --workdir=<run>` gives the real int8 model.
"""

import dataclasses

import jax
from flax import linen as nn

from bigmodels import quant
from bigmodels.errors import BadInput
from bigmodels.names import path_name
from bigmodels.regimes.base import Regime


class QAT(Regime):

    name = "qat"

    def __init__(self, spec: quant.QuantSpec):
        self.spec = spec

    def wrap_task(self, task):
        if not dataclasses.is_dataclass(task) or not isinstance(getattr(task, "model", None),
                                                                nn.Module):
            raise BadInput(f"quant.mode=qat: task {type(task).__name__} has no model to "
                           f"quantize")
        return dataclasses.replace(task, model=quant.qat_model(task.model, self.spec))

    def check(self, abstract_params, abstract_model_state) -> None:
        modules = {path_name(p).rpartition("/")[0]
                   for p, _ in jax.tree_util.tree_leaves_with_path(abstract_params)
                   if path_name(p).endswith("kernel")}
        if not any(quant.spec.matches(self.spec, m) for m in modules):
            raise BadInput(f"quant.include={self.spec.include!r} / quant.exclude="
                           f"{self.spec.exclude!r}: no layer with a kernel matches "
                           f"(e.g. {sorted(modules)[:1] or 'the model has none'})")


def from_config(config, task, mesh) -> list[Regime]:
    if quant.is_quantized(config):
        raise BadInput("quant.mode=ptq marks a quantized export, which does not train; "
                       "train with quant.mode=qat, or fine-tune its float run")
    spec = quant.from_config(config, "qat")
    if spec is None:
        return []
    if config.get("lora") is not None and config.lora.rank > 0:
        raise BadInput("quant.mode=qat cannot train LoRA adapters (lora.rank > 0): QLoRA "
                       "is lora.base_dtype=int8|nf4")
    return [QAT(spec)]
