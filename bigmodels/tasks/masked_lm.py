"""Masked-language-model pretraining (BERT): predict the selected tokens of a corrupted
input. The loss and accuracy average over selected positions only (`weights`)."""

import dataclasses

import jax.numpy as jnp
import optax
from flax import linen as nn
from bigmodels.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class MaskedLM(Task):
    model: nn.Module
    seq_len: int = 0          # row length; 0 = the model's context

    @property
    def tokens_per_example(self) -> int:
        return self.seq_len or self.model.context_length

    def init(self, rng, batch):
        return self.model.init({"params": rng}, batch["tokens"], batch["segments"],
                               batch["lengths"])

    def _per_token(self, params, batch, rng, train):
        logits = self.model.apply({"params": params}, batch["tokens"], batch["segments"],
                                  batch["lengths"], train=train,
                                  rngs={"dropout": rng} if train else None)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
        return losses, correct, batch["weights"]

    def loss(self, params, model_state, batch, rng, train=True):
        losses, correct, w = self._per_token(params, batch, rng, train)
        n = jnp.maximum(w.sum(), 1.0)
        loss = (losses * w).sum() / n
        return loss, ({"loss": loss, "accuracy": (correct * w).sum() / n}, model_state)

    def eval_sums(self, params, model_state, batch):
        losses, correct, w = self._per_token(params, batch, None, False)
        return {"loss": ((losses * w).sum(), w.sum()), "accuracy": ((correct * w).sum(), w.sum())}

    def train_flops_per_example(self, params) -> float:
        t = self.tokens_per_example
        return t * self.model.train_flops_per_token(params, t)
