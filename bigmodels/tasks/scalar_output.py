"""The shared part of tasks whose model has one output per example: a binary logit
(tasks/binary.py) or a regression value (tasks/regression.py)."""

import dataclasses

from flax import linen as nn

from bigmodels.errors import BadInput
from bigmodels.tasks.classify import apply_model, model_inputs
from bigmodels.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class ScalarOutput(Task):
    model: nn.Module

    name = ""          # the config.task name, for error messages

    @classmethod
    def from_config(cls, config, model, data=None):
        if config.model.get("num_classes", 1) != 1:
            raise BadInput(f"model.num_classes: task {cls.name} needs one output per "
                           f"example, got {config.model.num_classes}")
        return cls(model)

    def init(self, rng, batch):
        return self.model.init({"params": rng}, *model_inputs(batch))

    def _output(self, params, model_state, batch, rng, train):
        """(B outputs, model_state after the call)."""
        out, model_state = apply_model(self.model, params, model_state, batch, rng, train)
        return out.reshape(out.shape[0]), model_state

    def train_flops_per_example(self, params) -> float:
        return self.model.train_flops_per_token(params, 1)
