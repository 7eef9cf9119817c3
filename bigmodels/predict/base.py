"""What every family's predictor is, and what the classifiers share: class names and
one record per example."""

import json
import os
from typing import ClassVar, Protocol

import numpy as np

from bigmodels.names import CLASSES_FILE
from bigmodels.tasks.classify import apply_model


class Predictor(Protocol):
    """A family's predictor, built from a loaded run and a `Batcher`:

        input_kind          what `--input` names: text | image | csv | wav | none
        options             the CLI flags `predict` takes as keywords
        read(path)          the inputs that `--input=path` names (BadInput if not its kind)
        predict(inputs, **options) -> one dict per input, as the CLI writes them
    """

    input_kind: ClassVar[str]
    options: ClassVar[tuple] = ()

    def read(self, path: str) -> list:
        ...

    def predict(self, inputs, **options) -> list[dict]:
        ...


def classifier_forward(loaded, batcher):
    """(the params and model state placed on the batcher's devices, a jitted
    forward(those, batch) -> logits) of a classifier or regressor: the task's own
    `apply_model` in eval mode."""
    model = loaded.model
    consts = batcher.place({"params": loaded.params, "model_state": loaded.model_state})
    forward = batcher.jit(lambda c, batch: apply_model(
        model, c["params"], c["model_state"], batch, None, False)[0])
    return consts, forward


def saved_class_names(run_dir: str) -> list | None:
    """The class names a text classification run saved, or None."""
    path = os.path.join(run_dir, CLASSES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [str(n) for n in json.load(f)]


def with_default_names(names, count: int) -> list[str]:
    """`names` if there is one per class, else the class indices as strings."""
    return list(names) if names is not None and len(names) == count else \
        [str(i) for i in range(count)]


def class_record(probabilities_K: np.ndarray, names: list[str]) -> dict:
    """The most probable label and every class's probability."""
    return {"label": names[int(np.argmax(probabilities_K))],
            "probabilities": {n: float(p) for n, p in zip(names, probabilities_K)}}


def binary_probabilities(logits_B: np.ndarray) -> np.ndarray:
    """B x 2: (1 - p, p) with p = sigmoid(logit), the probability of label 1."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits_B, np.float64)))
    return np.stack([1.0 - p, p], axis=-1)


def softmax(logits_BxK: np.ndarray) -> np.ndarray:
    z = np.asarray(logits_BxK, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def score_records(task: str, outputs_BxK: np.ndarray, names: list[str],
                  unscale=lambda y: y) -> list[dict]:
    """One record per example: label and probabilities (classify: softmax of the
    logits; binary_classify: sigmoid of the one logit), or the predicted value
    (regress; `unscale` undoes the target's standardisation)."""
    outputs_BxK = np.asarray(outputs_BxK)
    if task == "regress":
        values = unscale(outputs_BxK.reshape(len(outputs_BxK)))
        return [{"prediction": float(v)} for v in values]
    if task == "binary_classify":
        probabilities = binary_probabilities(outputs_BxK.reshape(len(outputs_BxK)))
    else:
        probabilities = softmax(outputs_BxK)
    return [class_record(p, names) for p in probabilities]


def output_count(task: str, config) -> int:
    """Classes a prediction names: 2 for a binary classifier (one logit)."""
    return 2 if task == "binary_classify" else int(config.model.num_classes)
