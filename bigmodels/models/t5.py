"""T5-style encoder-decoder Transformer (pre-norm, one token embedding shared by the
encoder, the decoder and the output head when tied).

    encoder: embed + positions -> blocks (bidirectional, padding-masked) -> norm
    decoder: embed + positions -> blocks (causal self-attn, cross-attn to the
             encoder output) -> norm -> logits

Positions are `learned` (absolute, one table per stack), `rotary` (relative: the
attention scores depend only on position differences) or `relative` (T5's: a learned
bias of the self-attention logits per head and bucketed distance, one table per stack).
`decode=True` runs the decoder with the KV cache of bigmodels.nn.attention (see
bigmodels.decoding).

Hugging Face's T5 (bigmodels.convert.t5) is positions="relative", norm="rmsnorm",
use_bias=False, attention_scale=1 (T5 folds 1/sqrt(head_dim) into its init) and
mlp_activation "relu" (v1.0) or "geglu" (v1.1, Flan-T5); v1.0 ties the head and scales
the decoder output by embed_dim**-0.5 (scale_decoder_output), v1.1 does neither.
"""

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.embed import Embed
from bigmodels.nn.norms import make_norm
from bigmodels.nn.positions import LearnedPositions, RelativePositionBias
from bigmodels.nn.transformer import TransformerBlock


class T5Stack(nn.Module):
    """The encoder (is_decoder=False) or the decoder stack, on embedded tokens."""
    num_layers: int
    num_heads: int
    mlp_dim: int
    context_length: int
    is_decoder: bool = False
    dropout: float = 0.0
    positions: str = "learned"
    norm: str = "layernorm"
    use_bias: bool = True
    attention_impl: str | None = None
    approximate_gelu: bool = True
    dtype: jnp.dtype = jnp.float32
    head_dim: int = 0
    mlp_activation: str = "gelu"
    norm_eps: float = 0.0
    attention_scale: float = 0.0
    relative_buckets: int = 32
    relative_max_distance: int = 128

    def _relative_bias(self, positions_BxT, decode: bool):
        """The self-attention bias of relative positions; under decode against key
        positions 0 ... context_length - 1 (the cache takes the first max_len)."""
        keys_BxS = positions_BxT
        if decode:
            keys_BxS = jnp.broadcast_to(jnp.arange(self.context_length),
                                        (positions_BxT.shape[0], self.context_length))
        return RelativePositionBias(self.num_heads, self.relative_buckets,
                                    self.relative_max_distance,
                                    bidirectional=not self.is_decoder,
                                    name="relative_bias")(positions_BxT, keys_BxS)

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT, mask_BxT=None, context_BxSxD=None,
                 context_mask_BxS=None, train: bool = False, decode: bool = False):
        if self.positions == "learned":
            x_BxTxD = LearnedPositions(self.context_length, x_BxTxD.shape[-1],
                                       name="pos_embed")(x_BxTxD, positions_BxT)
        bias = (self._relative_bias(positions_BxT, decode) if self.positions == "relative"
                else None)
        x_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(x_BxTxD)
        for i in range(self.num_layers):
            x_BxTxD = TransformerBlock(
                self.num_heads, self.mlp_dim, self.num_layers, self.norm, self.use_bias,
                self.positions == "rotary", self.dropout, self.attention_impl,
                self.approximate_gelu, causal=self.is_decoder,
                cross_attention=self.is_decoder, dtype=self.dtype, head_dim=self.head_dim,
                mlp_activation=self.mlp_activation, norm_eps=self.norm_eps,
                attn_scale=self.attention_scale, name=f"block_{i}")(
                    x_BxTxD, positions_BxT, train, decode, mask_BxT=mask_BxT,
                    context_BxSxD=context_BxSxD, context_mask_BxS=context_mask_BxS,
                    bias_BxNxTxS=bias)
        return make_norm(self.norm, self.use_bias, self.dtype, name="final_norm",
                         eps=self.norm_eps)(x_BxTxD)


class T5(nn.Module):
    vocab_size: int                   # config 0 = take it from the tokenizer
    num_layers: int = 2               # encoder blocks
    num_decoder_layers: int = 0       # 0 = num_layers
    num_heads: int = 4
    embed_dim: int = 128
    mlp_ratio: int = 4
    context_length: int = 128         # longest source and longest target
    dropout: float = 0.0
    positions: str = "learned"        # learned | rotary | relative
    norm: str = "layernorm"           # layernorm | rmsnorm
    use_bias: bool = True
    tie_embeddings: bool = True
    attention_impl: str | None = None
    approximate_gelu: bool = True
    dtype: jnp.dtype = jnp.float32
    mlp_dim: int = 0                  # 0 = mlp_ratio * embed_dim
    head_dim: int = 0                 # 0 = embed_dim / num_heads
    mlp_activation: str = "gelu"      # gelu | relu | swiglu | geglu (nn/mlp.py)
    norm_eps: float = 0.0             # 0 = the norm's default
    attention_scale: float = 0.0      # of the attention logits; 0 = 1/sqrt(head_dim)
    relative_buckets: int = 32        # positions="relative": buckets of distance
    relative_max_distance: int = 128  # ... the distance from which all share one bucket
    scale_decoder_output: bool = False    # x * embed_dim**-0.5 before the head (T5 v1.0)

    def setup(self):
        if self.positions not in ("learned", "rotary", "relative"):
            raise ValueError(f"model.positions: {self.positions!r} (learned | rotary | "
                             f"relative)")
        self.token_embed = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype)
        common = dict(num_heads=self.num_heads,
                      mlp_dim=self.mlp_dim or self.mlp_ratio * self.embed_dim,
                      context_length=self.context_length, dropout=self.dropout,
                      positions=self.positions, norm=self.norm, use_bias=self.use_bias,
                      attention_impl=self.attention_impl,
                      approximate_gelu=self.approximate_gelu, dtype=self.dtype,
                      head_dim=self.head_dim, mlp_activation=self.mlp_activation,
                      norm_eps=self.norm_eps, attention_scale=self.attention_scale,
                      relative_buckets=self.relative_buckets,
                      relative_max_distance=self.relative_max_distance)
        self.encoder = T5Stack(self.num_layers, is_decoder=False, **common)
        self.decoder = T5Stack(self.num_decoder_layers or self.num_layers, is_decoder=True,
                               **common)
        if not self.tie_embeddings:
            self.head = Dense(self.vocab_size, ("embed", "vocab"), use_bias=False,
                              dtype=self.dtype)

    def __call__(self, inputs_BxS, input_lengths_B, decoder_inputs_BxT, train: bool = False,
                 decode: bool = False):
        """Teacher forcing: logits (float32, B x T x vocab) of the token after each
        decoder input. With decode=True this call only allocates the cache."""
        encoded, mask = self.encode(inputs_BxS, input_lengths_B, train)
        return self.decode(decoder_inputs_BxT, encoded, mask, train=train, decode=decode)

    def encode(self, inputs_BxS, input_lengths_B=None, train: bool = False):
        """(encoder output B x S x D, source mask B x S); positions past a row's
        length are padding that no valid position reads."""
        s = inputs_BxS.shape[1]
        if input_lengths_B is None:
            input_lengths_B = jnp.full(inputs_BxS.shape[:1], s, jnp.int32)
        mask = jnp.arange(s)[None, :] < input_lengths_B[:, None]
        positions = jnp.broadcast_to(jnp.arange(s), inputs_BxS.shape)
        return self.encoder(self.token_embed(inputs_BxS), positions, mask_BxT=mask,
                            train=train), mask

    def decode(self, tokens_BxT, encoded_BxSxD=None, input_mask_BxS=None,
               positions_BxT=None, train: bool = False, decode: bool = False):
        """Next-token logits. Under decode, only the first call passes the encoder
        output (cross-attention caches its projection); later calls pass None."""
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
        x = self.decoder(self.token_embed(tokens_BxT), positions_BxT,
                         context_BxSxD=encoded_BxSxD, context_mask_BxS=input_mask_BxS,
                         train=train, decode=decode)
        if self.scale_decoder_output:
            x = x * self.embed_dim ** -0.5
        logits = self.token_embed.attend(x) if self.tie_embeddings else self.head(x)
        return logits.astype(jnp.float32)

    def train_flops_per_example(self, params, source_len: int, target_len: int) -> float:
        """6 FLOPs per matmul parameter per token it is applied to, plus attention
        scores and values (the bigmodels.flops formula, per stack). The decoder's
        cross-attention key/value projection is counted over target, not source,
        tokens: a small undercount when sources are longer."""
        lookup = ("pos_embed", "relative_bias")
        enc = flops.matmul_param_count(params["encoder"], lookup)
        dec = flops.matmul_param_count(params["decoder"], lookup)
        head = self.vocab_size * self.embed_dim
        n_dec = self.num_decoder_layers or self.num_layers
        inner = self.num_heads * (self.head_dim or self.embed_dim // self.num_heads)
        attention = 12.0 * inner * (self.num_layers * source_len * source_len
                                    + n_dec * target_len * (target_len + source_len))
        return 6.0 * (enc * source_len + (dec + head) * target_len) + attention


def t5_config(name: str = "t5", **overrides):
    """The `config.model` of a T5: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
