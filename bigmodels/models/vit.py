"""A Vision Transformer (Dosovitskiy et al. 2021) for small NHWC images:

    image -> non-overlapping p x p patches, flattened -> Dense to embed_dim
          -> add learned position embeddings, prepend a learned [CLS] token
          -> pre-norm TransformerBlocks (non-causal: every token sees every other)
          -> final norm -> Dense head on the [CLS] token
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.errors import BadInput
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import logical, normal
from bigmodels.nn.norms import make_norm
from bigmodels.nn.transformer import apply_blocks


def patchify(images_BxHxWxC, p: int):
    """B x H x W x C -> B x (H/p * W/p) x (p * p * C), patches in row-major order."""
    b, h, w, c = images_BxHxWxC.shape
    x = images_BxHxWxC.reshape(b, h // p, p, w // p, p, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // p) * (w // p), p * p * c)


class ViT(nn.Module):
    num_classes: int                  # config 0 = take it from the data
    image_size: int = 8
    patch_size: int = 2
    embed_dim: int = 64
    num_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 128
    num_channels: int = 0             # 0 = any: taken from the images
    norm_eps: float = 0.0             # 0 = LayerNorm's default (1e-5)
    approximate_gelu: bool = True     # tanh GELU; False = exact erf GELU (HF's ViT)
    dropout: float = 0.0
    remat: str = "none"               # none | full | dots | dots_no_batch (nn/transformer.py)
    scan_layers: bool = False         # one nn.scan over the blocks (params under "blocks")
    dtype: jnp.dtype = jnp.float32

    @property
    def num_tokens(self) -> int:
        """Patches + the [CLS] token."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @nn.compact
    def __call__(self, images_BxHxWxC, train: bool = False):
        if (images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:3] != (self.image_size,) * 2
                or self.image_size % self.patch_size):
            raise BadInput(f"model.image_size={self.image_size}, patch_size="
                           f"{self.patch_size}: expected B x {self.image_size} x "
                           f"{self.image_size} x C images with the side a multiple of the "
                           f"patch size, got {images_BxHxWxC.shape}")
        if self.num_channels and images_BxHxWxC.shape[-1] != self.num_channels:
            raise BadInput(f"model.num_channels={self.num_channels}: got images of shape "
                           f"{images_BxHxWxC.shape}")
        patches = patchify(images_BxHxWxC.astype(self.dtype), self.patch_size)
        d = self.embed_dim
        x = Dense(d, (None, "embed"), init_std=math.sqrt(1 / patches.shape[-1]),
                  dtype=self.dtype, name="patch_embed")(patches)
        # Positions are learned for the patches only; [CLS] starts at zero (as in
        # big_vision). Its residual stream is then, from step 0, only what it read from
        # the patches: a constant start vector would dominate it at init (the blocks'
        # outputs start small) and leave the head a near image-independent input.
        pos = self.param("pos_embed", normal(0.02, ("length", "embed")),
                         (self.num_tokens - 1, d))
        x = x + pos.astype(self.dtype)
        cls = self.param("cls", logical(nn.initializers.zeros, (None, None, "embed")),
                         (1, 1, d))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, d)).astype(self.dtype), x],
                            axis=1)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        positions = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])  # unused: no rotary
        x = apply_blocks(x, positions, train, remat=self.remat, scan_layers=self.scan_layers,
                         num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                         num_layers=self.num_layers, dropout=self.dropout, causal=False,
                         norm_eps=self.norm_eps, approximate_gelu=self.approximate_gelu,
                         dtype=self.dtype)
        x = make_norm("layernorm", True, self.dtype, name="final_norm",
                      eps=self.norm_eps)(x[:, 0])
        logits = Dense(self.num_classes, ("embed", None), dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int = 1) -> float:
        """FLOPs per image (the classify task counts one "token" per image): 6 per
        matmul parameter per token it is applied to, plus attention. The patch
        embedding runs on the patches only, the head on [CLS] only. Norms, softmax and
        the position add are left out."""
        t = self.num_tokens
        count = lambda name: flops.matmul_param_count({name: params[name]})  # noqa: E731
        blocks = (count("blocks") if self.scan_layers     # stacked: all layers in one tree
                  else sum(count(f"block_{i}") for i in range(self.num_layers)))
        return (t * flops.transformer_train_flops_per_token(blocks, self.num_layers, t,
                                                            self.embed_dim)
                + 6.0 * (t - 1) * count("patch_embed") + 6.0 * count("head"))


def vit_config(name: str = "vit", **overrides):
    """The `config.model` of the ViT classifier: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
