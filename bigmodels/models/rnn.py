"""Recurrent language model: token embedding -> stacked LSTM or GRU -> vocabulary.

It has the GPT's interface (`__call__(tokens, positions, train, decode)`), so the
causal_lm task, the trainer and `bigmodels.generate` serve it unchanged. With
`decode=True` the per-layer carries live in the `cache` collection: a prompt is run
once, then each new token advances the carries by one step.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.embed import Embed
from bigmodels.nn.recurrent import RecurrentStack


class RNNLM(nn.Module):
    vocab_size: int                 # config 0 = take it from the tokenizer
    embed_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 1
    cell: str = "lstm"              # lstm | gru
    dropout: float = 0.0
    context_length: int = 128       # training window; decoding is not limited by it
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens_BxT, positions_BxT=None, train: bool = False,
                 decode: bool = False):
        """Returns next-token logits (float32) of shape B x T x vocab."""
        x = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, name="token_embed")(
            tokens_BxT)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        stack = RecurrentStack(self.cell, self.hidden_dim, self.num_layers, dropout=self.dropout,
                               dtype=self.dtype, name="rnn")
        if decode:
            x = self._decode(stack, x, positions_BxT)
        else:
            x, _ = stack(x, train=train)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = Dense(self.vocab_size, ("embed", "vocab"), dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32)

    def _decode(self, stack, x_BxTxD, positions_BxT=None):
        """Runs from the cached carries and stores the new ones (init only allocates).

        Tokens at negative positions are left padding (as in nn/attention.py's cache):
        they leave the carries as they were.
        """
        is_initialized = self.has_variable("cache", "carries")
        b, t = x_BxTxD.shape[:2]
        h = jnp.zeros((b, self.hidden_dim), self.dtype)
        layer = (h, h) if self.cell == "lstm" else h           # an LSTM carries (c, h)
        cache = self.variable("cache", "carries", lambda: (layer,) * self.num_layers)
        if positions_BxT is None or t == 1:
            out, carries = stack(x_BxTxD, initial_carries=cache.value)
        else:
            out, carries = self._run_left_padded(stack, x_BxTxD, positions_BxT, cache.value)
        if is_initialized:
            cache.value = carries
        return out

    @staticmethod
    def _run_left_padded(stack, x_BxTxD, positions_BxT, carries):
        """nn.RNN masks only trailing padding: each row is rotated so that its padding
        comes last, run with its length, and rotated back."""
        t = x_BxTxD.shape[1]
        pad_B = jnp.sum(positions_BxT < 0, axis=1)
        lengths_B = t - pad_B
        steps_T = jnp.arange(t)
        rolled = jnp.take_along_axis(x_BxTxD, ((steps_T + pad_B[:, None]) % t)[..., None], 1)
        out, new = stack(rolled, lengths_B=lengths_B, initial_carries=carries)
        out = jnp.take_along_axis(out, ((steps_T - pad_B[:, None]) % t)[..., None], 1)
        # A row of padding only has no last step: it keeps its carries.
        keep = lambda old, upd: jnp.where((lengths_B > 0)[:, None], upd, old)  # noqa: E731
        return out, jax.tree.map(keep, carries, new)

    def train_flops_per_token(self, params, seq_len: int) -> float:
        """6 FLOPs per matmul parameter (the gate kernels, recurrent kernels, head)."""
        return 6.0 * flops.matmul_param_count(params, lookup_only=("token_embed",))


class RNNClassifier(nn.Module):
    """Embedding -> (bi)LSTM/GRU stack -> mean over the valid positions -> class logits."""
    vocab_size: int                 # config 0 = take it from the tokenizer
    num_classes: int                # config 0 = take it from the data
    embed_dim: int = 128
    hidden_dim: int = 256
    num_layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = True
    dropout: float = 0.0
    context_length: int = 128       # the longest passage
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens_BxT, lengths_B=None, train: bool = False):
        if lengths_B is None:
            lengths_B = jnp.full(tokens_BxT.shape[:1], tokens_BxT.shape[1], jnp.int32)
        x = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, name="token_embed")(
            tokens_BxT)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        h, _ = RecurrentStack(self.cell, self.hidden_dim, self.num_layers, self.bidirectional,
                              self.dropout, self.dtype, name="rnn")(x, lengths_B, train)
        # Padded positions are zero, so the sum over T is the sum over valid positions.
        pooled = h.sum(axis=1) / jnp.maximum(lengths_B, 1)[:, None].astype(h.dtype)
        pooled = nn.Dropout(self.dropout, deterministic=not train)(pooled)
        logits = Dense(self.num_classes, ("embed", "vocab"), dtype=self.dtype,
                       name="head")(pooled)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int) -> float:
        return 6.0 * flops.matmul_param_count(params, lookup_only=("token_embed",))


def rnn_classifier_config(name: str = "rnn_classifier", **overrides):
    """The `config.model` of a recurrent sequence classifier: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)



def rnn_config(name: str = "rnn", **overrides):
    """The `config.model` of a recurrent LM: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
