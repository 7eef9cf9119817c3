"""The pre-norm Transformer block shared by GPT, BERT and T5.

    x = x + Dropout(SelfAttn(Norm(x)))                  causal (GPT, T5 decoder) or not
    x = x + Dropout(CrossAttn(Norm(x), context))        only with cross_attention (T5 decoder)
    x = x + Dropout(MLP(Norm(x)))

Pre-norm (GPT-2, T5) trains stably without warmup tricks; the model adds a final norm.
"""

import math

import jax
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
        # Activations are sharded over the batch (see sharding.with_activation_rules).
        x_BxTxD = nn.with_logical_constraint(x_BxTxD, ("batch", "length", "act_embed"))
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
    """A block as one step of `nn.scan` over the layers: (x, positions) -> (x, None)."""
    train: bool = False
    decode: bool = False

    def __call__(self, x_BxTxD, positions_BxT):
        return super().__call__(x_BxTxD, positions_BxT, self.train, self.decode), None


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
                 remat: str = "none", scan_layers: bool = False, **block_kwargs):
    """`block_kwargs["num_layers"]` blocks on x, created in the calling module's scope
    (call it from a compact method): submodules block_0 ... block_{L-1}, or with
    `scan_layers` one nn.scan named "blocks" (`stack_layers` converts between them)."""
    if scan_layers:
        x_BxTxD, _ = scanned_blocks(remat, train=train, decode=decode, name="blocks",
                                    **block_kwargs)(x_BxTxD, positions_BxT)
        return x_BxTxD
    block = block_class(remat)
    for i in range(block_kwargs["num_layers"]):
        x_BxTxD = block(**block_kwargs, name=f"block_{i}")(x_BxTxD, positions_BxT, train,
                                                           decode)
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
