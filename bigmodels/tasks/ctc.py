"""Speech recognition with CTC: features -> per-frame logits -> characters.

The loss is `optax.ctc_loss` summed over the batch and divided by the number of label
characters (a per-character negative log-likelihood, comparable across batches). Eval
decodes greedily (best class per frame, repeats collapsed, blanks dropped) and reports
CER and WER as total edit distance / total reference characters (words), summed over
every eval utterance rather than averaged per batch.

Ids follow `bigmodels.data.speech`: the blank is the last id of the vocabulary (the
tokenizer's "<blank>" special) and words are split on the space, id 0
(`names.SPEECH_SPACE_ID`).
"""

import dataclasses

import jax.numpy as jnp
import optax
from flax import linen as nn

from bigmodels.metrics.edit_distance import token_errors, word_errors
from bigmodels.names import SPEECH_SPACE_ID as SPACE_ID
from bigmodels.tasks.base import Task


def greedy_decode(logits_BxTxV, lengths_B, blank_id: int):
    """Best path: argmax per valid frame, repeats collapsed, then blanks dropped.
    Returns (ids B x T left-aligned and padded with blank_id, lengths B)."""
    best = jnp.argmax(logits_BxTxV, axis=-1)
    frames = jnp.arange(best.shape[1])
    previous = jnp.concatenate([jnp.full_like(best[:, :1], -1), best[:, :-1]], axis=1)
    keep = (frames[None, :] < lengths_B[:, None]) & (best != blank_id) & (best != previous)
    position = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, best.shape[1])   # T = dropped
    rows = jnp.arange(best.shape[0])[:, None]
    ids = jnp.full_like(best, blank_id).at[rows, position].set(best, mode="drop")
    return ids, keep.sum(axis=1).astype(jnp.int32)


def paddings(lengths_B, size: int):
    """1.0 at padded positions, 0.0 at valid ones (optax's convention)."""
    return (jnp.arange(size)[None, :] >= lengths_B[:, None]).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class CTC(Task):
    model: nn.Module
    max_frames: int = 0                # input frames per example (for FLOPs and tokens/s)

    @classmethod
    def from_config(cls, config, model, data=None):
        return cls(model, max_frames=config.data.max_frames)

    @property
    def blank_id(self) -> int:
        return self.model.vocab_size - 1

    @property
    def tokens_per_example(self) -> int:
        return self.max_frames

    def init(self, rng, batch):
        return self.model.init({"params": rng}, batch["features"], batch["feature_lengths"])

    def _logits(self, params, batch, rng, train):
        return self.model.apply({"params": params}, batch["features"], batch["feature_lengths"],
                                train=train, rngs={"dropout": rng} if train else None)

    def _losses(self, logits, lengths, batch):
        labels = batch["labels"]
        return optax.ctc_loss(logits, paddings(lengths, logits.shape[1]), labels,
                              paddings(batch["label_lengths"], labels.shape[1]),
                              blank_id=self.blank_id)

    def loss(self, params, model_state, batch, rng, train=True):
        logits, lengths = self._logits(params, batch, rng, train)
        chars = jnp.maximum(batch["label_lengths"].sum(), 1).astype(jnp.float32)
        loss = self._losses(logits, lengths, batch).sum() / chars
        return loss, ({"loss": loss}, model_state)

    def eval_sums(self, params, model_state, batch):
        logits, lengths = self._logits(params, batch, None, False)
        ids, id_lengths = greedy_decode(logits, lengths, self.blank_id)
        labels, label_lengths = batch["labels"], batch["label_lengths"]
        char_errors = token_errors(ids, id_lengths, labels, label_lengths)
        errors, ref_words = word_errors(ids, id_lengths, labels, label_lengths, SPACE_ID)
        chars = label_lengths.sum().astype(jnp.float32)
        f32 = lambda x: x.sum().astype(jnp.float32)   # noqa: E731
        return {"loss": (self._losses(logits, lengths, batch).sum(), chars),
                "cer": (f32(char_errors), chars),
                "wer": (f32(errors), f32(ref_words)),
                "utterance_accuracy": (f32(char_errors == 0), jnp.float32(labels.shape[0]))}

    def train_flops_per_example(self, params) -> float:
        return self.model.train_flops_per_example(params, self.max_frames)
