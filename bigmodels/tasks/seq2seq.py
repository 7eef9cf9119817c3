"""Sequence-to-sequence (T5): source tokens -> target tokens, trained by teacher forcing.

A batch holds `inputs` (B x S, padded), `input_lengths`, `targets` (B x T, each ending
with <eos>, padded with <pad>) and `target_lengths` (counting the <eos>). The decoder
reads <bos> + targets[:-1]; the loss averages over valid target tokens only.

Eval reports teacher-forced `loss` and `accuracy` (per target token), and, from greedy
decoding with the KV cache (at most T tokens), `exact_match` (the decoded sequence up
to its <eos> equals the target) and corpus `bleu` (bigmodels.metrics.bleu, on tokens).
"""

import dataclasses

import jax.numpy as jnp
import optax
from flax import linen as nn

from bigmodels import decoding
from bigmodels.errors import BadInput
from bigmodels.metrics import bleu
from bigmodels.names import SEQ2SEQ_SPECIALS as SPECIALS
from bigmodels.tasks.base import Task


def special_ids(vocab_size: int) -> tuple[int, int, int]:
    """(pad, bos, eos) ids of a vocabulary that ends with SPECIALS: seq2seq tokenizers put
    them, in this order, after the base vocabulary (tokenizers.build(..., specials=SPECIALS)),
    so their ids follow from vocab_size alone."""
    first = vocab_size - len(SPECIALS)
    return first, first + 1, first + 2


def decoder_inputs(targets_BxT, bos_id: int):
    """Teacher forcing: <bos> followed by every target token but the last."""
    return jnp.concatenate([jnp.full_like(targets_BxT[:, :1], bos_id), targets_BxT[:, :-1]], 1)


def valid_mask(lengths_B, length: int):
    return jnp.arange(length)[None, :] < lengths_B[:, None]


def content_lengths(tokens_BxT, eos_id: int):
    """Tokens before the first <eos> (all T if there is none)."""
    is_eos = tokens_BxT == eos_id
    return jnp.where(jnp.any(is_eos, 1), jnp.argmax(is_eos, 1), tokens_BxT.shape[1])


@dataclasses.dataclass(frozen=True)
class Seq2Seq(Task):
    model: nn.Module
    source_len: int
    target_len: int
    pad_id: int
    bos_id: int
    eos_id: int

    @classmethod
    def from_config(cls, config, model, data=None):
        d = config.data
        source_len, target_len = d.get("source_len", 0), d.get("target_len", 0)
        for key, value in (("source_len", source_len), ("target_len", target_len)):
            if not 0 < value <= model.context_length:
                raise BadInput(f"data.{key}={value} must be in [1, model.context_length="
                               f"{model.context_length}]")
        if model.vocab_size <= len(SPECIALS):
            raise BadInput(f"model.vocab_size={model.vocab_size} leaves no room for "
                           f"tokens besides {SPECIALS}")
        return cls(model, source_len, target_len, *special_ids(model.vocab_size))

    @property
    def tokens_per_example(self) -> int:
        return self.source_len + self.target_len

    def init(self, rng, batch):
        return self.model.init({"params": rng}, batch["inputs"], batch["input_lengths"],
                               decoder_inputs(batch["targets"], self.bos_id))

    def _token_stats(self, params, batch, rng, train):
        """(per-token losses, per-token correct, valid-token mask), all B x T."""
        targets = batch["targets"]
        logits = self.model.apply({"params": params}, batch["inputs"], batch["input_lengths"],
                                  decoder_inputs(targets, self.bos_id), train=train,
                                  rngs={"dropout": rng} if train else None)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return losses, correct, valid_mask(batch["target_lengths"], targets.shape[1])

    def loss(self, params, model_state, batch, rng, train=True):
        losses, correct, mask = self._token_stats(params, batch, rng, train)
        n = jnp.maximum(jnp.sum(mask), 1)
        loss = jnp.sum(jnp.where(mask, losses, 0.0)) / n
        accuracy = jnp.sum(jnp.where(mask, correct, 0.0)) / n
        return loss, ({"loss": loss, "accuracy": accuracy}, model_state)

    def decode(self, params, batch):
        """Greedy decoding of the batch's sources, as long as its targets."""
        return decoding.greedy(self.model, params, batch["inputs"], batch["input_lengths"],
                               batch["targets"].shape[1], self.bos_id, self.eos_id,
                               self.pad_id)

    def eval_sums(self, params, model_state, batch):
        losses, correct, mask = self._token_stats(params, batch, None, False)
        n_tokens = jnp.sum(mask).astype(jnp.float32)
        targets, lengths = batch["targets"], batch["target_lengths"]
        decoded = self.decode(params, batch)
        # Every target position up to and including <eos> must match: the decoded
        # sequence then ends exactly where the target does.
        exact = jnp.all((decoded == targets) | ~mask, axis=1)
        stats = bleu.ngram_stats(decoded, content_lengths(decoded, self.eos_id),
                                 targets, lengths - 1)           # neither counts <eos>
        return {"loss": (jnp.sum(jnp.where(mask, losses, 0.0)), n_tokens),
                "accuracy": (jnp.sum(jnp.where(mask, correct, 0.0)), n_tokens),
                "exact_match": (jnp.sum(exact).astype(jnp.float32),
                                jnp.array(targets.shape[0], jnp.float32)),
                "bleu_stats": (stats, jnp.array(1.0))}

    def finalize_eval(self, sums: dict) -> dict:
        out = {k: s / max(w, 1e-12) for k, (s, w) in sums.items() if k != "bleu_stats"}
        out["bleu"] = bleu.bleu(sums["bleu_stats"][0])
        return out

    def train_flops_per_example(self, params) -> float:
        return self.model.train_flops_per_example(params, self.source_len, self.target_len)
