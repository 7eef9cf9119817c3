"""GPT: a decoder-only Transformer language model (pre-norm, causal self-attention).

The defaults are GPT-2's recipe (learned positions, LayerNorm, GELU, tied embeddings).
Llama's is `positions="rotary"`, `norm="rmsnorm"`, `use_bias=False`,
`mlp_activation="swiglu"`, `tie_embeddings=False`, and usually `num_kv_heads` <
`num_heads` (grouped-query attention) and a `rope_theta` of 500000
(bigmodels/convert/llama.py maps a Hugging Face config onto these fields).
"""

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config

from bigmodels.nn.dense import Dense
from bigmodels.nn.embed import Embed
from bigmodels.nn.norms import make_norm
from bigmodels.nn.positions import LearnedPositions, Rope
from bigmodels.nn.transformer import apply_blocks


class GPT(nn.Module):
    vocab_size: int                   # config 0 = take it from the tokenizer
    num_layers: int = 4
    num_heads: int = 4
    embed_dim: int = 128
    mlp_ratio: int = 4
    context_length: int = 128
    dropout: float = 0.0
    positions: str = "learned"        # learned | rotary
    norm: str = "layernorm"           # layernorm | rmsnorm
    use_bias: bool = True
    tie_embeddings: bool = True
    attention_impl: str | None = None  # None (config "") = JAX picks; "cudnn" | "xla"
    approximate_gelu: bool = True     # tanh GELU; False = exact erf GELU (nanoGPT, PyTorch)
    remat: str = "none"               # none | full | dots | dots_no_batch (nn/transformer.py)
    scan_layers: bool = False         # one nn.scan over the blocks (params under "blocks")
    dtype: jnp.dtype = jnp.float32
    mlp_dim: int = 0                  # 0 = mlp_ratio * embed_dim (Llama 3 8B: 3.5x)
    mlp_activation: str = "gelu"      # gelu | relu | swiglu | geglu
    num_kv_heads: int = 0             # 0 = num_heads; fewer = grouped-query attention
    head_dim: int = 0                 # 0 = embed_dim / num_heads
    qkv_bias: bool = False            # q, k, v biases even when use_bias=False (Qwen2)
    norm_eps: float = 0.0             # 0 = the norm's default (LayerNorm 1e-5, RMSNorm 1e-6)
    rope_theta: float = 10000.0       # rotary base
    rope_scaling_factor: float = 0.0  # > 0: Llama 3.1's long-context rotary rescaling
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_context: int = 8192

    @property
    def rope(self) -> Rope:
        return Rope(self.rope_theta, self.rope_scaling_factor, self.rope_low_freq_factor,
                    self.rope_high_freq_factor, self.rope_original_context)

    @nn.compact
    def __call__(self, tokens_BxT, positions_BxT=None, train: bool = False,
                 decode: bool = False, segments_BxT=None):
        """Returns next-token logits (float32) of shape B x T x vocab. `segments_BxT`
        (packed documents) keeps attention within each; pass their positions too."""
        x, embed = self.hidden_states(tokens_BxT, positions_BxT, train, decode, segments_BxT)
        if self.tie_embeddings:
            logits = embed.attend(x)
        else:
            logits = Dense(self.vocab_size, ("embed", "vocab"), use_bias=False,
                           dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32)

    def hidden_states(self, tokens_BxT, positions_BxT=None, train: bool = False,
                      decode: bool = False, segments_BxT=None):
        """(final normalised hidden states B x T x D, the token embedding module).

        Called from a compact method, so its submodules (and param names) are the
        model's own: a subclass with another head shares every backbone name.
        """
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
        embed = Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, name="token_embed")
        x = embed(tokens_BxT)
        if self.positions == "learned":
            # Under decode, left padding sits at negative positions (nn/attention.py): it
            # reads position 0, and no real token attends to it.
            table_positions = jnp.maximum(positions_BxT, 0) if decode else positions_BxT
            x = LearnedPositions(self.context_length, self.embed_dim, name="pos_embed")(
                x, table_positions)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        kwargs = dict(num_heads=self.num_heads,
                      mlp_dim=self.mlp_dim or self.mlp_ratio * self.embed_dim,
                      num_layers=self.num_layers, norm=self.norm, use_bias=self.use_bias,
                      rotary=self.positions == "rotary", dropout=self.dropout,
                      attention_impl=self.attention_impl,
                      approximate_gelu=self.approximate_gelu, causal=True, dtype=self.dtype,
                      head_dim=self.head_dim, num_kv_heads=self.num_kv_heads,
                      qkv_bias=self.qkv_bias, mlp_activation=self.mlp_activation,
                      norm_eps=self.norm_eps, rope=self.rope)
        x = apply_blocks(x, positions_BxT, train, decode, remat=self.remat,
                         scan_layers=self.scan_layers, segments_BxT=segments_BxT, **kwargs)
        final_norm = make_norm(self.norm, self.use_bias, self.dtype, name="final_norm",
                               eps=self.norm_eps)
        return final_norm(x), embed

    def train_flops_per_token(self, params, seq_len: int) -> float:
        """The Transformer formula of bigmodels.flops, over `seq_len` positions."""
        lookup_only = ("pos_embed",) + (() if self.tie_embeddings else ("token_embed",))
        n = flops.matmul_param_count(params, lookup_only)
        return flops.transformer_train_flops_per_token(n, self.num_layers, seq_len,
                                                       self.attention_width)

    @property
    def attention_width(self) -> int:
        """Query heads x head width: the width of the attention scores' matmuls."""
        return self.num_heads * (self.head_dim or self.embed_dim // self.num_heads)


class GPTClassifier(GPT):
    """A GPT whose head reads the last valid token and predicts a class.

    The backbone's param names are the GPT's, so `init_from=<a GPT LM run>` with
    `init_from_skip=^(classifier|head)/` fine-tunes a pretrained LM as a classifier.
    """
    num_classes: int = 2

    @nn.compact
    def __call__(self, tokens_BxT, lengths_B=None, train: bool = False):
        if lengths_B is None:
            lengths_B = jnp.full(tokens_BxT.shape[:1], tokens_BxT.shape[1], jnp.int32)
        x, _ = self.hidden_states(tokens_BxT, train=train)
        # Causal attention: the last valid token has read the whole passage.
        last = jnp.take_along_axis(x, (lengths_B - 1)[:, None, None], axis=1)[:, 0]
        logits = Dense(self.num_classes, ("embed", "vocab"), dtype=self.dtype,
                       name="classifier")(last)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int) -> float:
        n = flops.matmul_param_count(params, ("pos_embed", "token_embed"))   # lookups only
        return flops.transformer_train_flops_per_token(n, self.num_layers, seq_len,
                                                       self.attention_width)


def gpt_config(name: str = "gpt", **overrides):
    """The `config.model` of a GPT (model gpt or gpt_classifier): the module's field
    defaults, then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
