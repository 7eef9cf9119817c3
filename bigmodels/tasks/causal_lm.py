"""Next-token prediction on windows of T+1 tokens (inputs = [:-1], targets = [1:])."""

import dataclasses
import inspect

import jax.numpy as jnp
import optax
from flax import linen as nn

from bigmodels.errors import BadInput
from bigmodels.tasks.base import Task, data_meaning


def split_window(tokens_BxT1):
    return tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]


def check_packing(config, model, what: str) -> None:
    """With data.packing, `model` (named `what` in the error) must take segments."""
    if config.data.get("packing") and "segments_BxT" not in inspect.signature(
            type(model).__call__).parameters:
        raise BadInput(f"data.packing={config.data.packing}: {what} cannot keep attention "
                       f"within documents (a transformer can: gpt)")


def packed_documents(batch) -> dict:
    """The model's segment and position inputs of a batch packed with
    data.packing=segmented (bigmodels/data/windows.py), or none."""
    if "segments" not in batch:
        return {}
    return {"segments_BxT": batch["segments"][:, :-1],
            "positions_BxT": batch["positions"][:, :-1]}


@dataclasses.dataclass(frozen=True)
class CausalLM(Task):
    model: nn.Module
    seq_len: int = 0          # training sequence length; 0 = the model's context
    vocabulary: str = ""      # the data's tokenizer digest (tasks/base.py)
    class_names: tuple = ()

    distillable = True

    @classmethod
    def from_config(cls, config, model, data=None):
        check_packing(config, model, f"model {config.model.name}")
        return cls(model, seq_len=config.data.get("seq_len", 0), **data_meaning(data))

    @property
    def tokens_per_example(self) -> int:
        return self.seq_len or self.model.context_length

    def init(self, rng, batch):
        inputs, _ = split_window(batch["tokens"])
        return self.model.init({"params": rng}, inputs, train=False)

    def logits(self, params, model_state, batch, rng, train=True):
        """(logits B x T x V of each next token, model_state)."""
        inputs, _ = split_window(batch["tokens"])
        logits = self.model.apply({"params": params}, inputs, train=train,
                                  rngs={"dropout": rng} if train else None,
                                  **packed_documents(batch))
        return logits, model_state

    def _token_losses_of(self, logits, batch):
        _, targets = split_window(batch["tokens"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return losses, correct

    def _token_losses(self, params, batch, rng, train):
        return self._token_losses_of(self.logits(params, {}, batch, rng, train)[0], batch)

    def logits_loss(self, logits, batch):
        """(loss, metrics, weights): the mean cross-entropy over every token."""
        losses, correct = self._token_losses_of(logits, batch)
        loss = jnp.mean(losses)
        return loss, {"loss": loss, "accuracy": jnp.mean(correct)}, jnp.ones_like(losses)

    def loss(self, params, model_state, batch, rng, train=True):
        logits, model_state = self.logits(params, model_state, batch, rng, train)
        loss, metrics, _ = self.logits_loss(logits, batch)
        return loss, (metrics, model_state)

    def eval_sums(self, params, model_state, batch):
        losses, correct = self._token_losses(params, batch, None, False)
        n = jnp.array(losses.size, jnp.float32)
        return {"loss": (jnp.sum(losses), n), "accuracy": (jnp.sum(correct), n)}

    def train_flops_per_example(self, params) -> float:
        t = self.tokens_per_example
        return t * self.model.train_flops_per_token(params, t)
