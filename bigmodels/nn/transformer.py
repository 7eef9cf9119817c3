"""The pre-norm Transformer block shared by GPT, BERT and T5.

    x = x + Dropout(SelfAttn(Norm(x)))                  causal (GPT, T5 decoder) or not
    x = x + Dropout(CrossAttn(Norm(x), context))        only with cross_attention (T5 decoder)
    x = x + Dropout(MLP(Norm(x)))

Pre-norm (GPT-2, T5) trains stably without warmup tricks; the model adds a final norm.
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.attention import MultiHeadAttention
from bigmodels.nn.mlp import MLP
from bigmodels.nn.norms import make_norm


class TransformerBlock(nn.Module):
    num_heads: int
    mlp_dim: int
    num_layers: int                   # of the whole stack: scales the residual init
    norm: str = "layernorm"
    use_bias: bool = True
    rotary: bool = False
    dropout: float = 0.0
    attention_impl: str | None = None
    approximate_gelu: bool = True
    causal: bool = True
    cross_attention: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT, train: bool, decode: bool = False,
                 mask_BxT=None, context_BxSxD=None, context_mask_BxS=None):
        """`mask_BxT` marks valid (non-padding) positions of x for self-attention;
        `context_BxSxD` and its mask are what cross-attention reads."""
        d = x_BxTxD.shape[-1]
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2L).
        out_std = 0.02 / math.sqrt(2 * self.num_layers)
        drop = nn.Dropout(self.dropout, deterministic=not train)
        h = make_norm(self.norm, self.use_bias, self.dtype, name="attn_norm")(x_BxTxD)
        h = MultiHeadAttention(self.num_heads, d // self.num_heads, use_bias=self.use_bias,
                               causal=self.causal, rotary=self.rotary, out_init_std=out_std,
                               implementation=self.attention_impl, dtype=self.dtype,
                               name="attn")(h, positions_BxT, mask_BxS=mask_BxT, decode=decode)
        x_BxTxD = x_BxTxD + drop(h)
        if self.cross_attention:
            h = make_norm(self.norm, self.use_bias, self.dtype, name="cross_norm")(x_BxTxD)
            h = MultiHeadAttention(self.num_heads, d // self.num_heads, use_bias=self.use_bias,
                                   causal=False, out_init_std=out_std,
                                   implementation=self.attention_impl, dtype=self.dtype,
                                   name="cross_attn")(h, context_BxSxD=context_BxSxD,
                                                      mask_BxS=context_mask_BxS, decode=decode)
            x_BxTxD = x_BxTxD + drop(h)
        h = make_norm(self.norm, self.use_bias, self.dtype, name="mlp_norm")(x_BxTxD)
        h = MLP(self.mlp_dim, use_bias=self.use_bias, out_init_std=out_std,
                approximate_gelu=self.approximate_gelu, dtype=self.dtype, name="mlp")(h)
        return x_BxTxD + drop(h)
