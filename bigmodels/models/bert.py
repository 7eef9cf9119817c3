"""BERT: a bidirectional Transformer encoder, pretrained as a masked LM, fine-tuned with
a classification head on [CLS].

Every variant keeps the encoder under `encoder/`, so `init_from=<a bert_mlm run>` with
`init_from_skip=^(classifier|mlm_)` moves the whole pretrained encoder into a classifier,
and `optim.freeze=^encoder/` or `optim.lr_multipliers=^encoder/=0.1` act on it alone.

Blocks are pre-norm (as GPT and T5 here) with a final norm, rather than the original
post-norm: it trains without BERT's long warmup and shares `TransformerBlock`.
Positions are rotary by default (`positions="learned"` gives BERT's table): a masked
token's own input says nothing, so everything comes from attending to its neighbours,
and with learned absolute positions a small MLM sat near the unigram loss for hundreds
of steps before finding them (bert_mlm.py: eval loss 2.80 at step 600 with learned
positions, 2.09 at step 200 with rotary).

A Hugging Face BERT (bigmodels/convert/bert.py) is `post_norm=True` (the original order,
no final norm), `positions="learned"`, its `norm_eps` and `mlp_dim`, and for a classifier
`pooling="pooler"` (BERT's pooler: Dense + tanh on [CLS]).
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.embed import Embed
from bigmodels.nn.initializers import zeros
from bigmodels.nn.norms import make_norm
from bigmodels.nn.positions import LearnedPositions
from bigmodels.nn.transformer import TransformerBlock


def valid_mask(lengths_B, seq_len: int):
    """B x T booleans: True on the first `lengths_B[b]` positions of row b."""
    return jnp.arange(seq_len)[None, :] < lengths_B[:, None]


class _BertFields(nn.Module):
    """The hyperparameters every BERT module shares."""
    vocab_size: int                     # config 0 = from the tokenizer (with its specials)
    num_layers: int = 4
    num_heads: int = 4
    embed_dim: int = 128
    mlp_ratio: int = 4
    mlp_dim: int = 0                    # 0 = mlp_ratio * embed_dim
    context_length: int = 128
    type_vocab_size: int = 2
    positions: str = "rotary"           # rotary | learned (BERT's absolute embeddings)
    dropout: float = 0.1
    norm: str = "layernorm"
    norm_eps: float = 0.0               # 0 = the norm's default (BERT's is 1e-12)
    post_norm: bool = False             # BERT's x = Norm(x + sublayer(x)), no final norm
    use_bias: bool = True
    attention_impl: str | None = None
    approximate_gelu: bool = False      # BERT's exact erf GELU
    dtype: jnp.dtype = jnp.float32

    def make_encoder(self):
        fields = {f: getattr(self, f) for f in _BertFields.__dataclass_fields__
                  if f not in ("parent", "name")}
        return BertEncoder(**fields, name="encoder")

    def layer_norm(self):
        """The LayerNorm of the embeddings and of the MLM head, whatever `norm` is."""
        return make_norm("layernorm", self.use_bias, self.dtype, eps=self.norm_eps)


class BertEncoder(_BertFields):
    """Token + position + segment embeddings -> bidirectional blocks with a padding mask."""

    def setup(self):
        # setup, not compact: the MLM head reads `token_embed` to tie its output layer.
        self.token_embed = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype)
        if self.positions == "learned":
            self.pos_embed = LearnedPositions(self.context_length, self.embed_dim)
        self.segment_embed = Embed(self.type_vocab_size, self.embed_dim, dtype=self.dtype)
        self.embed_norm = self.layer_norm()
        self.blocks = [TransformerBlock(
            self.num_heads, self.mlp_dim or self.mlp_ratio * self.embed_dim, self.num_layers,
            self.norm, self.use_bias, rotary=self.positions == "rotary", dropout=self.dropout,
            attention_impl=self.attention_impl, approximate_gelu=self.approximate_gelu,
            causal=False, dtype=self.dtype, norm_eps=self.norm_eps, post_norm=self.post_norm)
            for _ in range(self.num_layers)]
        # Post-norm blocks end on a norm already.
        self.final_norm = (None if self.post_norm else
                           make_norm(self.norm, self.use_bias, self.dtype, eps=self.norm_eps))
        self.drop = nn.Dropout(self.dropout)

    def __call__(self, tokens_BxT, segments_BxT, lengths_B, train: bool = False):
        """Hidden states B x T x D; padded positions are neither attended to nor used."""
        b, t = tokens_BxT.shape
        positions = jnp.broadcast_to(jnp.arange(t), (b, t))
        x = self.token_embed(tokens_BxT) + self.segment_embed(segments_BxT)
        if self.positions == "learned":
            x = self.pos_embed(x, positions)
        x = self.embed_norm(x)
        x = self.drop(x, deterministic=not train)
        mask = valid_mask(lengths_B, t)
        for block in self.blocks:
            x = block(x, positions, train, mask_BxT=mask)
        return x if self.final_norm is None else self.final_norm(x)


def _flops_per_token(model, params, seq_len: int) -> float:
    n = flops.matmul_param_count(params, ("pos_embed", "segment_embed", "token_embed"))
    if getattr(model, "ties_embedding", False):
        n += model.vocab_size * model.embed_dim
    return flops.transformer_train_flops_per_token(n, model.num_layers, seq_len,
                                                   model.embed_dim)


class BertMLM(_BertFields):
    """Encoder + transform (Dense, GELU, LayerNorm) + the tied token embedding as output."""
    ties_embedding = True

    def setup(self):
        self.encoder = self.make_encoder()
        self.mlm_transform = Dense(self.embed_dim, ("embed", "mlp"), dtype=self.dtype)
        self.mlm_norm = self.layer_norm()
        self.mlm_bias = self.param("mlm_bias", zeros(("vocab",)), (self.vocab_size,))

    def __call__(self, tokens_BxT, segments_BxT, lengths_B, train: bool = False):
        """Logits (float32) B x T x vocab at every position; the task reads masked ones."""
        x = self.encoder(tokens_BxT, segments_BxT, lengths_B, train)
        x = self.mlm_norm(jax.nn.gelu(self.mlm_transform(x), approximate=self.approximate_gelu))
        logits = self.encoder.token_embed.attend(x) + self.mlm_bias
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int) -> float:
        return _flops_per_token(self, params, seq_len)


class BertClassifier(_BertFields):
    """Encoder + a linear head on the [CLS] (first) position, on the mean of the valid
    positions (`pooling="mean"`: MLM pretraining never trains [CLS] itself, so a frozen
    encoder's [CLS] is a weak feature), or on BERT's pooler, tanh(Dense([CLS]))
    (`pooling="pooler"`, as in Hugging Face's BertForSequenceClassification)."""
    num_classes: int = 2
    pooling: str = "cls"                # cls | mean | pooler

    @nn.compact
    def __call__(self, tokens_BxT, lengths_B=None, train: bool = False):
        if lengths_B is None:
            lengths_B = jnp.full(tokens_BxT.shape[:1], tokens_BxT.shape[1], jnp.int32)
        x = self.make_encoder()(tokens_BxT, jnp.zeros_like(tokens_BxT), lengths_B, train)
        if self.pooling == "cls":
            pooled = x[:, 0]
        elif self.pooling == "pooler":
            pooled = jnp.tanh(Dense(self.embed_dim, ("embed", "mlp"), dtype=self.dtype,
                                    name="pooler")(x[:, 0]))
        elif self.pooling == "mean":
            mask = valid_mask(lengths_B, x.shape[1])[..., None]
            pooled = (x * mask).sum(1) / jnp.maximum(lengths_B, 1)[:, None].astype(x.dtype)
        else:
            raise ValueError(f"model.pooling: unknown {self.pooling!r} (cls | mean | pooler)")
        pooled = nn.Dropout(self.dropout, deterministic=not train)(pooled)
        logits = Dense(self.num_classes, ("embed", "vocab"), dtype=self.dtype,
                       name="classifier")(pooled)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int) -> float:
        return _flops_per_token(self, params, seq_len)


def bert_config(name: str = "bert_mlm", **overrides):
    """The `config.model` of a BERT (model bert_mlm or bert_classifier): the module's field
    defaults, then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
