"""The Transformer block shared by GPT, BERT, ViT and T5.

    x = x + Dropout(SelfAttn(Norm(x)))                  causal (GPT, T5 decoder) or not
    x = x + Dropout(CrossAttn(Norm(x), context))        only with cross_attention (T5 decoder)
    x = x + Dropout(MLP(Norm(x)))

Pre-norm (GPT-2, Llama, T5, ViT) trains stably without warmup tricks; the model adds a
final norm. `post_norm=True` is the original Transformer's and BERT's order,
x = Norm(x + Dropout(Sublayer(x))), for loading checkpoints trained that way.
"""

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.attention import MultiHeadAttention
from bigmodels.nn.mlp import MLP
from bigmodels.nn.norms import make_norm
from bigmodels.nn.positions import Rope


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
    head_dim: int = 0                 # 0 = width / num_heads
    num_kv_heads: int = 0             # 0 = num_heads; fewer = grouped-query attention
    qkv_bias: bool = False            # q, k, v biases without use_bias (Qwen2)
    mlp_activation: str = "gelu"      # gelu | relu | swiglu | geglu (nn/mlp.py)
    norm_eps: float = 0.0             # 0 = the norm's default
    post_norm: bool = False
    rope: Rope = Rope()
    attn_scale: float = 0.0           # of the attention logits; 0 = 1/sqrt(head_dim), T5: 1

    def _norm(self, name):
        return make_norm(self.norm, self.use_bias, self.dtype, name=name, eps=self.norm_eps)

    @property
    def _out_init_std(self) -> float:
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2L).
        return 0.02 / math.sqrt(2 * self.num_layers)

    def _attention(self, d, name, **kwargs):
        return MultiHeadAttention(
            self.num_heads, self.head_dim or d // self.num_heads, use_bias=self.use_bias,
            out_init_std=self._out_init_std, implementation=self.attention_impl,
            dtype=self.dtype, scale=self.attn_scale, name=name, **kwargs)

    def _residual(self, x_BxTxD, sublayer, norm_name, drop):
        """x + drop(sublayer(Norm(x))), or with post_norm Norm(x + drop(sublayer(x)))."""
        if self.post_norm:
            return self._norm(norm_name)(x_BxTxD + drop(sublayer(x_BxTxD)))
        return x_BxTxD + drop(sublayer(self._norm(norm_name)(x_BxTxD)))

    @nn.compact
    def __call__(self, x_BxTxD, positions_BxT, train: bool, decode: bool = False,
                 mask_BxT=None, context_BxSxD=None, context_mask_BxS=None,
                 bias_BxNxTxS=None, segments_BxT=None):
        """`mask_BxT` marks valid (non-padding) positions of x for self-attention;
        `context_BxSxD` and its mask are what cross-attention reads; `bias_BxNxTxS`
        is added to the self-attention logits (T5's relative positions); `segments_BxT`
        keeps self-attention within each packed document."""
        d = x_BxTxD.shape[-1]
        # Activations are sharded over the batch (see sharding.with_activation_rules).
        x_BxTxD = nn.with_logical_constraint(x_BxTxD, ("batch", "length", "act_embed"))
        drop = nn.Dropout(self.dropout, deterministic=not train)
        attn = self._attention(d, "attn", causal=self.causal, rotary=self.rotary,
                               rope=self.rope, num_kv_heads=self.num_kv_heads,
                               qkv_bias=self.qkv_bias)
        x_BxTxD = self._residual(
            x_BxTxD, lambda h: attn(h, positions_BxT, mask_BxS=mask_BxT, decode=decode,
                                    bias_BxNxTxS=bias_BxNxTxS, segments_BxT=segments_BxT),
            "attn_norm", drop)
        if self.cross_attention:
            cross = self._attention(d, "cross_attn", causal=False)
            x_BxTxD = self._residual(
                x_BxTxD, lambda h: cross(h, context_BxSxD=context_BxSxD,
                                         mask_BxS=context_mask_BxS, decode=decode),
                "cross_norm", drop)
        mlp = MLP(self.mlp_dim, use_bias=self.use_bias, out_init_std=self._out_init_std,
                  activation=self.mlp_activation, approximate_gelu=self.approximate_gelu,
                  dtype=self.dtype, name="mlp")
        return self._residual(x_BxTxD, mlp, "mlp_norm", drop)


# Rematerialisation: what a block keeps from its forward pass for the backward pass.
# The rest is recomputed, trading FLOPs for activation memory.
REMAT_POLICIES = {
    "none": None,                 # keep everything (no remat)
    "full": "nothing",            # keep only the block's input; recompute the block
    "dots": jax.checkpoint_policies.dots_saveable,          # keep matmul outputs
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _check_remat(remat: str):
    from bigmodels.errors import BadInput
    if remat not in REMAT_POLICIES:
        raise BadInput(f"model.remat must be one of {', '.join(REMAT_POLICIES)}, got {remat!r}")
    policy = REMAT_POLICIES[remat]
    return policy, (None if policy == "nothing" else policy)


def block_class(remat: str = "none"):
    """TransformerBlock, wrapped in `nn.remat` with the named policy."""
    policy, jax_policy = _check_remat(remat)
    if policy is None:
        return TransformerBlock
    # static_argnums count self as 0: `train` and `decode` are Python bools.
    return nn.remat(TransformerBlock, static_argnums=(3, 4), policy=jax_policy)


class ScanStep(TransformerBlock):
    """A block as one step of `nn.scan` over the layers: (x, positions, segments) ->
    (x, None)."""
    train: bool = False
    decode: bool = False

    def __call__(self, x_BxTxD, positions_BxT, segments_BxT=None):
        return super().__call__(x_BxTxD, positions_BxT, self.train, self.decode,
                                segments_BxT=segments_BxT), None


def scanned_blocks(remat: str = "none", **block_kwargs):
    """`block_kwargs["num_layers"]` blocks as one `nn.scan`: one compiled block body, params stacked on
    a leading "layers" axis (so compile time does not grow with depth). Under scan,
    the remat policy decides exactly what each layer keeps for the backward pass."""
    policy, jax_policy = _check_remat(remat)
    step = ScanStep if policy is None else nn.remat(ScanStep, policy=jax_policy,
                                                    prevent_cse=False)
    return nn.scan(step, variable_axes={"params": 0, "cache": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=nn.broadcast, length=block_kwargs["num_layers"],
                   metadata_params={nn.PARTITION_NAME: "layers"})(**block_kwargs)


def apply_blocks(x_BxTxD, positions_BxT, train: bool, decode: bool = False, *,
                 remat: str = "none", scan_layers: bool = False, segments_BxT=None,
                 **block_kwargs):
    """`block_kwargs["num_layers"]` blocks on x, created in the calling module's scope
    (call it from a compact method): submodules block_0 ... block_{L-1}, or with
    `scan_layers` one nn.scan named "blocks" (`stack_layers` converts between them)."""
    if scan_layers:
        x_BxTxD, _ = scanned_blocks(remat, train=train, decode=decode, name="blocks",
                                    **block_kwargs)(x_BxTxD, positions_BxT, segments_BxT)
        return x_BxTxD
    block = block_class(remat)
    for i in range(block_kwargs["num_layers"]):
        x_BxTxD = block(**block_kwargs, name=f"block_{i}")(x_BxTxD, positions_BxT, train,
                                                           decode, segments_BxT=segments_BxT)
    return x_BxTxD


def stack_layers(params: dict, num_layers: int, prefix: str = "block_",
                 scanned: str = "blocks") -> dict:
    """Unscanned params ({prefix}0 ... {prefix}L-1) -> the scanned layout ({scanned}
    with each leaf stacked on a leading layer axis). Lossless; `unstack_layers` undoes it."""
    import numpy as np
    layers = [params[f"{prefix}{i}"] for i in range(num_layers)]
    out = {k: v for k, v in params.items() if not k.startswith(prefix)}
    out[scanned] = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *layers)
    return out


def unstack_layers(params: dict, num_layers: int, prefix: str = "block_",
                   scanned: str = "blocks") -> dict:
    """The scanned layout -> one {prefix}i subtree per layer."""
    out = {k: v for k, v in params.items() if k != scanned}
    for i in range(num_layers):
        out[f"{prefix}{i}"] = jax.tree.map(lambda x, i=i: x[i], params[scanned])
    return out
