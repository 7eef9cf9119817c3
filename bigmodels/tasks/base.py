"""The Task protocol: all the trainer knows of a task.

Every task subclasses `Task` and implements the required methods; the optional
capabilities are declared here with their defaults, so the trainer never asks whether
a task has one (no `hasattr`). A task turns (model, batch) into a loss and metrics:

    init(rng, batch)                              -> {"params": ..., <state>: ...}
    loss(params, model_state, batch, rng, train)  -> (loss, (metrics, new_model_state))
    eval_sums(params, model_state, batch)         -> {metric: (sum, weight)}
    train_flops_per_example(params)               -> FLOPs of one example, fwd + bwd

Optional, with defaults:

    from_config(config, model, data)   classmethod: build from the config (default:
                                       Class(model, seq_len=data.seq_len))
    tokens_per_example                 tokens in one example, for perf/tokens_per_s;
                                       0 (the default) for images and feature rows
    finalize_eval(sums)                metrics that are not ratios of sums (macro-F1)
    update_groups                      top-level modules updated one after another in
                                       a step, each by loss(..., group=name) (a GAN;
                                       the alternating_groups regime)
    image_outputs                      names of the image grids `eval_images` returns;
                                       the eval_images regime writes them as PNGs
    eval_images(params, model_state, batch) -> {name: N x H x W x C in [0, 1]}
    distillable                        the loss is a function of logits, through the
                                       two methods below (the distill regime uses them)
    logits(params, model_state, batch, rng, train) -> (logits ... x K, model_state)
    logits_loss(logits, batch) -> (loss, metrics, weights): `loss` is the weighted
                                       mean over the rows of logits (... x K) with
                                       `weights` (shape ...), as `loss` computes it
    vocabulary, class_names            what the input ids and the output units mean,
                                       from the data ("" and () when unknown), so two
                                       runs can be compared (a teacher and its student)
"""

import hashlib
import json
from typing import Any, ClassVar, Protocol


class Task(Protocol):

    model: Any
    tokens_per_example: ClassVar[int] = 0
    update_groups: ClassVar[tuple] = ()
    image_outputs: ClassVar[tuple] = ()
    distillable: ClassVar[bool] = False
    vocabulary: str = ""
    class_names: tuple = ()

    @classmethod
    def from_config(cls, config, model, data=None):
        return cls(model, seq_len=config.data.get("seq_len", 0))

    def init(self, rng, batch) -> dict:
        ...

    def loss(self, params, model_state, batch, rng, train: bool = True):
        ...

    def eval_sums(self, params, model_state, batch) -> dict:
        ...

    def train_flops_per_example(self, params) -> float:
        ...

    def finalize_eval(self, sums: dict) -> dict:
        """Each metric's sum over its weight (the default for metrics that are means)."""
        return {k: s / max(w, 1e-12) for k, (s, w) in sums.items()}

    def eval_images(self, params, model_state, batch) -> dict:
        return {}

    def logits(self, params, model_state, batch, rng, train: bool = True):
        raise NotImplementedError(f"{type(self).__name__} is not distillable")

    def logits_loss(self, logits, batch):
        raise NotImplementedError(f"{type(self).__name__} is not distillable")


def vocabulary_digest(tokenizer_json) -> str:
    """A short digest of a tokenizer's JSON (`tokenizer.to_json()` or the tokenizer.json
    a run saved): equal digests, equal vocabularies."""
    text = json.dumps(tokenizer_json, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_meaning(data) -> dict:
    """`vocabulary` and `class_names` of a task built on `data` (None when a task is
    built without its data, as an export does)."""
    tokenizer = getattr(data, "tokenizer", None)
    return dict(vocabulary=vocabulary_digest(tokenizer.to_json()) if tokenizer else "",
                class_names=tuple(getattr(data, "class_names", None) or ()))
