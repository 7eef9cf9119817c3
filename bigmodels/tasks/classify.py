"""Sequence classification: tokens (+ lengths) -> one label; accuracy and macro-F1.

Macro-F1 is not a mean of per-batch values, so eval sums a confusion matrix over all
eval batches and `finalize_eval` turns it into F1 at the end.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn


def macro_f1(confusion: np.ndarray) -> float:
    """Mean over classes of 2TP / (2TP + FP + FN); rows are true labels."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1e-12), 0.0)
    present = confusion.sum(axis=1) + confusion.sum(axis=0) > 0
    return float(f1[present].mean()) if present.any() else 0.0


@dataclasses.dataclass(frozen=True)
class Classify:
    model: nn.Module
    seq_len: int = 0          # passage length; 0 = the model's context

    @property
    def tokens_per_example(self) -> int:
        return self.seq_len or self.model.context_length

    def init(self, rng, batch):
        return self.model.init({"params": rng}, batch["tokens"], batch["lengths"])

    def _logits(self, params, batch, rng, train):
        return self.model.apply({"params": params}, batch["tokens"], batch["lengths"],
                                train=train, rngs={"dropout": rng} if train else None)

    def loss(self, params, model_state, batch, rng, train=True):
        logits = self._logits(params, batch, rng, train)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        return loss, ({"loss": loss, "accuracy": accuracy}, model_state)

    def eval_sums(self, params, model_state, batch):
        logits = self._logits(params, batch, None, False)
        labels, predicted = batch["label"], jnp.argmax(logits, -1)
        n = jnp.array(labels.size, jnp.float32)
        k = logits.shape[-1]
        confusion = jax.nn.one_hot(labels, k).T @ jax.nn.one_hot(predicted, k)
        return {"loss": (optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum(), n),
                "accuracy": (jnp.sum(predicted == labels).astype(jnp.float32), n),
                "confusion": (confusion, jnp.array(1.0))}

    def finalize_eval(self, sums: dict) -> dict:
        out = {k: s / max(w, 1e-12) for k, (s, w) in sums.items() if k != "confusion"}
        out["f1"] = macro_f1(sums["confusion"][0])
        return out

    def train_flops_per_example(self, params) -> float:
        t = self.tokens_per_example
        return t * self.model.train_flops_per_token(params, t)
