"""A small convolutional classifier for NHWC images: blocks of conv -> ReLU -> 2x2
max-pool -> dropout, then a dense layer and the class head.

Conv kernels are named (None, None, "embed", "mlp") (kh, kw, in, out) so the sharding
rules treat channels like a dense layer's features; an axis that does not divide
its mesh axis (1 input channel) stays replicated.
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.errors import BadInput
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import logical, zeros


def pooled_size(size: int) -> int:
    """Side length after a 2x2, stride-2, SAME-padded max-pool."""
    return math.ceil(size / 2)


class CNN(nn.Module):
    num_classes: int                  # config 0 = take it from the data
    image_size: int = 8               # side of the square input (for the FLOP count)
    channels: tuple = (32, 64)
    kernel_size: int = 3
    dense: int = 128
    dropout: float = 0.25
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, images_BxHxWxC, train: bool = False, features: bool = False):
        """Class logits; with `features`, the dense layer's ReLU activations instead
        (the embedding a Frechet distance is measured in)."""
        if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:3] != (self.image_size,) * 2:
            raise BadInput(f"model.image_size={self.image_size}: expected B x "
                           f"{self.image_size} x {self.image_size} x C images, got "
                           f"{images_BxHxWxC.shape}")
        x = images_BxHxWxC.astype(self.dtype)
        k = self.kernel_size
        for i, c in enumerate(self.channels):
            x = nn.Conv(c, (k, k), padding="SAME", dtype=self.dtype,
                        kernel_init=logical(nn.initializers.he_normal(),
                                            (None, None, "embed", "mlp")),
                        bias_init=zeros(("mlp",)), name=f"conv_{i}")(x)
            x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2), padding="SAME")
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(Dense(self.dense, ("embed", "mlp"), init_std=math.sqrt(2 / x.shape[-1]),
                          dtype=self.dtype, name="dense")(x))
        if features:
            return x.astype(jnp.float32)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = Dense(self.num_classes, ("mlp", None), init_std=math.sqrt(1 / x.shape[-1]),
                       dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int = 1) -> float:
        """FLOPs per example, forward + backward = 3 x forward.

        Forward: convs are `flops.conv_forward` (SAME padding, so the output side is
        the input side); a dense layer costs 2 x its kernel size. Pooling, ReLU and
        bias adds are left out (a few percent)."""
        side, forward = self.image_size, 0.0
        for i in range(len(self.channels)):
            forward += flops.conv_forward(params[f"conv_{i}"]["kernel"], side * side)
            side = pooled_size(side)
        for name in ("dense", "head"):
            forward += 2.0 * math.prod(params[name]["kernel"].shape)
        return 3.0 * forward


def cnn_config(name: str = "cnn", **overrides):
    """The `config.model` of the CNN classifier: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
