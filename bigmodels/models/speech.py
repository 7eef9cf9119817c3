"""Speech recognition model for CTC: log-mel frames -> per-frame character logits.

    features B x F x M -> conv front end (per layer: kernel 3, a stride in time, GELU)
                       -> BiLSTM stack or Transformer encoder (non-causal, padding-masked)
                       -> Dense to the vocabulary (characters + the CTC blank)

Padding: every conv input is zeroed past its valid length and padded by one frame on
each side, so output t only sees input frames st-1..st+1 (s: the stride) and a valid
output sees exactly what it would see in the unpadded sequence. The valid length of
the output is ceil(length / s) per layer. The LSTM and attention then mask past that
length, so the logits of valid frames do not depend on the padding
(tests/test_speech.py checks this).
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import normal, zeros
from bigmodels.nn.norms import make_norm
from bigmodels.nn.recurrent import RecurrentStack
from bigmodels.nn.transformer import TransformerBlock

KERNEL = 3


def conv_output_lengths(lengths, strides):
    """Valid frames after convs of kernel 3, padding 1 and `strides`: ceil(n / s) each."""
    for stride in strides:
        lengths = (lengths + stride - 1) // stride
    return lengths


def _mask(x_BxTxD, lengths_B):
    valid = jnp.arange(x_BxTxD.shape[1])[None, :] < lengths_B[:, None]
    return jnp.where(valid[..., None], x_BxTxD, 0), valid


class SpeechCTC(nn.Module):
    vocab_size: int                 # config 0 = from the tokenizer (characters + blank)
    conv_strides: tuple = (2, 1)    # one conv layer per entry; frames shrink by the product
    conv_dim: int = 128
    encoder: str = "lstm"           # lstm (bidirectional) | transformer
    hidden_dim: int = 128           # LSTM units per direction, or the Transformer width
    num_layers: int = 2
    num_heads: int = 4              # transformer only
    mlp_dim: int = 512              # transformer only
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features_BxFxM, lengths_B, train: bool = False):
        """Returns (logits B x T x vocab float32, valid output lengths B)."""
        x, lengths = features_BxFxM.astype(self.dtype), lengths_B
        for i, stride in enumerate(self.conv_strides):
            x, _ = _mask(x, lengths)
            x = nn.Conv(self.conv_dim, (KERNEL,), strides=(stride,),
                        padding=((KERNEL // 2, KERNEL // 2),), dtype=self.dtype,
                        param_dtype=jnp.float32,
                        kernel_init=normal(math.sqrt(2.0 / (KERNEL * x.shape[-1])),
                                           (None, "embed", "mlp")),
                        bias_init=zeros(("mlp",)), name=f"conv_{i}")(x)
            x = nn.gelu(x)
            lengths = conv_output_lengths(lengths, (stride,))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x, valid = _mask(x, lengths)
        if self.encoder == "lstm":
            x, _ = RecurrentStack("lstm", self.hidden_dim, self.num_layers, bidirectional=True,
                                  dropout=self.dropout, dtype=self.dtype, name="rnn")(
                x, lengths, train)
        elif self.encoder == "transformer":
            x = Dense(self.hidden_dim, ("mlp", "embed"), dtype=self.dtype, name="proj")(x)
            positions = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])
            for i in range(self.num_layers):
                x = TransformerBlock(self.num_heads, self.mlp_dim, self.num_layers,
                                     rotary=True, dropout=self.dropout, causal=False,
                                     dtype=self.dtype, name=f"block_{i}")(
                    x, positions, train, mask_BxT=valid)
            x = make_norm("layernorm", True, self.dtype, name="final_norm")(x)
        else:
            raise ValueError(f"unknown speech encoder {self.encoder!r} (lstm | transformer)")
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = Dense(self.vocab_size, ("embed", "vocab"), dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32), lengths

    def train_flops_per_example(self, params, num_frames: int) -> float:
        """6 FLOPs per matmul parameter per frame it is applied to (conv layer i runs at
        its output rate, the rest at the encoder's rate), plus attention."""
        total, frames = 0.0, num_frames
        for i, stride in enumerate(self.conv_strides):
            frames = conv_output_lengths(frames, (stride,))
            total += 6.0 * flops.matmul_param_count(params[f"conv_{i}"]) * frames
        rest = {k: v for k, v in params.items() if not k.startswith("conv_")}
        total += 6.0 * flops.matmul_param_count(rest) * frames
        if self.encoder == "transformer":
            total += 12.0 * self.num_layers * frames * frames * self.hidden_dim
        return total


def speech_config(name: str = "speech_ctc", **overrides):
    """The `config.model` of the CTC speech recogniser: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
