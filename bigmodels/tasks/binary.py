"""Binary classification: one logit per example -> sigmoid binary cross-entropy;
accuracy and the F1 of the positive class (label 1).

F1 is not a mean of per-batch values, so eval sums true positives, false positives
and false negatives over all eval batches; `finalize_eval` forms 2TP / (2TP+FP+FN).
"""

import dataclasses

import jax.numpy as jnp
import optax

from bigmodels.tasks.classify import example_weights
from bigmodels.tasks.scalar_output import ScalarOutput


def binary_f1(tp: float, fp: float, fn: float) -> float:
    """F1 of the positive class; 0 when there is no positive, predicted or true."""
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class BinaryClassify(ScalarOutput):
    name = "binary_classify"

    def loss(self, params, model_state, batch, rng, train=True):
        logits, model_state = self._output(params, model_state, batch, rng, train)
        labels, w = batch["label"], example_weights(batch)
        n = jnp.maximum(w.sum(), 1e-12)
        loss = (optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)) * w).sum() / n
        accuracy = (((logits > 0) == (labels == 1)) * w).sum() / n
        return loss, ({"loss": loss, "accuracy": accuracy}, model_state)

    def eval_sums(self, params, model_state, batch):
        logits, _ = self._output(params, model_state, batch, None, False)
        labels, w = batch["label"], example_weights(batch)
        predicted, positive = logits > 0, labels == 1
        n, one = w.sum(), jnp.array(1.0)
        return {"loss": ((optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)) * w).sum(), n),
                "accuracy": (((predicted == positive) * w).sum(), n),
                "tp": (((predicted & positive) * w).sum(), one),
                "fp": (((predicted & ~positive) * w).sum(), one),
                "fn": (((~predicted & positive) * w).sum(), one)}

    def finalize_eval(self, sums: dict) -> dict:
        out = {k: s / max(w, 1e-12) for k, (s, w) in sums.items() if k in ("loss", "accuracy")}
        out["f1"] = binary_f1(*(float(sums[k][0]) for k in ("tp", "fp", "fn")))
        return out
