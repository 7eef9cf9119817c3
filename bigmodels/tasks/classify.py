"""Classification: one label per example, from tokens (+ lengths), an image or a
feature row; accuracy and macro-F1.

Macro-F1 is not a mean of per-batch values, so eval sums a confusion matrix over all
eval batches and `finalize_eval` turns it into F1 at the end. A batch may carry a
per-example `weight` (0 for the padding rows of a last eval batch): every sum counts
an example `weight` times, so padding never counts.

Models with mutable state (BatchNorm's `batch_stats`) get it as `model_state`: training
applies it mutably and returns the update; eval reads the running averages and changes
nothing. Models without state are applied exactly as before.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from bigmodels.tasks.base import Task, data_meaning


def model_inputs(batch) -> tuple:
    """The model's positional inputs: (tokens, lengths), (image,) or (features,)."""
    if "tokens" in batch:
        return batch["tokens"], batch["lengths"]
    for key in ("image", "features"):
        if key in batch:
            return (batch[key],)
    raise KeyError(f"batch has none of tokens, image, features: {sorted(batch)}")


def example_weights(batch):
    """Per-example weights: the batch's `weight`, or 1 for every example."""
    return batch.get("weight", jnp.ones(batch["label" if "label" in batch else "target"].shape,
                                         jnp.float32))


def apply_model(model, params, model_state, batch, rng, train: bool):
    """(the model's outputs on the batch's inputs, model_state after the call): mutable
    state (BatchNorm statistics) is updated in training and only read at eval."""
    variables = {"params": params, **model_state}
    rngs = {"dropout": rng} if train else None
    if train and model_state:
        out, updates = model.apply(variables, *model_inputs(batch), train=True, rngs=rngs,
                                   mutable=list(model_state))
        return out, {**model_state, **updates}
    return model.apply(variables, *model_inputs(batch), train=train, rngs=rngs), model_state


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
class Classify(Task):
    model: nn.Module
    seq_len: int = 0          # passage length; 0 = the model's context
    vocabulary: str = ""      # the data's tokenizer digest and class names (tasks/base.py)
    class_names: tuple = ()

    distillable = True

    @classmethod
    def from_config(cls, config, model, data=None):
        return cls(model, seq_len=config.data.get("seq_len", 0), **data_meaning(data))

    @property
    def tokens_per_example(self) -> int:
        """Tokens of a passage; 0 for an image or a feature row."""
        return self.seq_len or getattr(self.model, "context_length", 0)

    def init(self, rng, batch):
        return self.model.init({"params": rng}, *model_inputs(batch))

    def _logits(self, params, model_state, batch, rng, train):
        return apply_model(self.model, params, model_state, batch, rng, train)

    def logits(self, params, model_state, batch, rng, train=True):
        return self._logits(params, model_state, batch, rng, train)

    def logits_loss(self, logits, batch):
        """(loss, metrics, weights): the weighted mean cross-entropy over examples."""
        w = example_weights(batch)
        n = jnp.maximum(w.sum(), 1e-12)
        loss = (optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]) * w
                ).sum() / n
        accuracy = ((jnp.argmax(logits, -1) == batch["label"]) * w).sum() / n
        return loss, {"loss": loss, "accuracy": accuracy}, w

    def loss(self, params, model_state, batch, rng, train=True):
        logits, model_state = self._logits(params, model_state, batch, rng, train)
        loss, metrics, _ = self.logits_loss(logits, batch)
        return loss, (metrics, model_state)

    def eval_sums(self, params, model_state, batch):
        logits, _ = self._logits(params, model_state, batch, None, False)
        labels, predicted = batch["label"], jnp.argmax(logits, -1)
        w = example_weights(batch)
        n = w.sum()
        k = logits.shape[-1]
        confusion = (jax.nn.one_hot(labels, k) * w[:, None]).T @ jax.nn.one_hot(predicted, k)
        return {"loss": ((optax.softmax_cross_entropy_with_integer_labels(logits, labels)
                          * w).sum(), n),
                "accuracy": (((predicted == labels) * w).sum(), n),
                "confusion": (confusion, jnp.array(1.0))}

    def finalize_eval(self, sums: dict) -> dict:
        out = {k: s / max(w, 1e-12) for k, (s, w) in sums.items() if k != "confusion"}
        out["f1"] = macro_f1(sums["confusion"][0])
        return out

    def train_flops_per_example(self, params) -> float:
        t = max(self.tokens_per_example, 1)
        return t * self.model.train_flops_per_token(params, t)
