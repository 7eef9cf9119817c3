"""T5-style encoder-decoder Transformer (pre-norm, one token embedding shared by the
encoder, the decoder and the tied output head).

    encoder: embed + positions -> blocks (bidirectional, padding-masked) -> norm
    decoder: embed + positions -> blocks (causal self-attn, cross-attn to the
             encoder output) -> norm -> logits

Positions are `learned` (absolute, one table per stack) or `rotary` (relative: the
attention scores depend only on position differences). `decode=True` runs the decoder
with the KV cache of bigmodels.nn.attention (see bigmodels.decoding).
"""

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.embed import Embed
from bigmodels.nn.norms import make_norm
from bigmodels.nn.positions import LearnedPositions
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

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT, mask_BxT=None, context_BxSxD=None,
                 context_mask_BxS=None, train: bool = False, decode: bool = False):
        if self.positions == "learned":
            x_BxTxD = LearnedPositions(self.context_length, x_BxTxD.shape[-1],
                                       name="pos_embed")(x_BxTxD, positions_BxT)
        x_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(x_BxTxD)
        for i in range(self.num_layers):
            x_BxTxD = TransformerBlock(
                self.num_heads, self.mlp_dim, self.num_layers, self.norm, self.use_bias,
                self.positions == "rotary", self.dropout, self.attention_impl,
                self.approximate_gelu, causal=self.is_decoder,
                cross_attention=self.is_decoder, dtype=self.dtype, name=f"block_{i}")(
                    x_BxTxD, positions_BxT, train, decode, mask_BxT=mask_BxT,
                    context_BxSxD=context_BxSxD, context_mask_BxS=context_mask_BxS)
        return make_norm(self.norm, self.use_bias, self.dtype, name="final_norm")(x_BxTxD)


class T5(nn.Module):
    vocab_size: int                   # config 0 = take it from the tokenizer
    num_layers: int = 2               # encoder blocks
    num_decoder_layers: int = 0       # 0 = num_layers
    num_heads: int = 4
    embed_dim: int = 128
    mlp_ratio: int = 4
    context_length: int = 128         # longest source and longest target
    dropout: float = 0.0
    positions: str = "learned"        # learned | rotary
    norm: str = "layernorm"           # layernorm | rmsnorm
    use_bias: bool = True
    tie_embeddings: bool = True
    attention_impl: str | None = None
    approximate_gelu: bool = True
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        if self.positions not in ("learned", "rotary"):
            raise ValueError(f"model.positions: {self.positions!r} (learned | rotary)")
        self.token_embed = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype)
        common = dict(num_heads=self.num_heads, mlp_dim=self.mlp_ratio * self.embed_dim,
                      context_length=self.context_length, dropout=self.dropout,
                      positions=self.positions, norm=self.norm, use_bias=self.use_bias,
                      attention_impl=self.attention_impl,
                      approximate_gelu=self.approximate_gelu, dtype=self.dtype)
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
        logits = self.token_embed.attend(x) if self.tie_embeddings else self.head(x)
        return logits.astype(jnp.float32)

    def train_flops_per_example(self, params, source_len: int, target_len: int) -> float:
        """6 FLOPs per matmul parameter per token it is applied to, plus attention
        scores and values (the bigmodels.flops formula, per stack). The decoder's
        cross-attention key/value projection is counted over target, not source,
        tokens: a small undercount when sources are longer."""
        lookup = ("pos_embed",)
        enc = flops.matmul_param_count(params["encoder"], lookup)
        dec = flops.matmul_param_count(params["decoder"], lookup)
        head = self.vocab_size * self.embed_dim
        n_dec = self.num_decoder_layers or self.num_layers
        attention = 12.0 * self.embed_dim * (self.num_layers * source_len * source_len
                                             + n_dec * target_len * (target_len + source_len))
        return 6.0 * (enc * source_len + (dec + head) * target_len) + attention


def t5_config(name: str = "t5", **overrides):
    """The `config.model` of a T5: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
