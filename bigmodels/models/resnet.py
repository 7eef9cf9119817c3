"""A small ResNet (He et al. 2016, post-activation "v1") for NHWC images:

    conv 3x3 -> BN -> ReLU
    stages of residual blocks: y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)),
        the first block of every stage after the first halves the side (stride 2) and
        its shortcut is a 1x1 strided conv + BN (plain identity otherwise)
    global average pool -> dense head

BatchNorm keeps running means and variances in the `batch_stats` collection, which the
train state carries as `model_state`: training normalises with the batch's statistics
and updates the running averages, eval normalises with the running averages.

The batch statistics are those of the global batch, also when the batch is sharded
over data-parallel devices: the step is one `jax.jit` program over the whole (logical)
batch, so the mean over the batch axis is a mean over every device's rows and XLA
inserts the cross-device reduction itself. No `axis_name` / pmean is needed, and a run
on 8 devices computes what a run on 1 does (tests/test_resnet_vit.py checks this).
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.errors import BadInput
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import logical, ones, zeros

CONV_AXES = (None, None, "embed", "mlp")     # kh, kw, in, out: channels like a dense layer


class ResNet(nn.Module):
    num_classes: int                  # config 0 = take it from the data
    image_size: int = 8               # side of the square input (for the FLOP count)
    stem: int = 32                    # channels of the stem conv
    stages: tuple = (32, 64)          # channels per stage
    blocks: int = 2                   # residual blocks per stage
    bn_momentum: float = 0.9          # running-average decay; short runs need < 0.99
    dtype: jnp.dtype = jnp.float32

    def _conv(self, features, kernel, stride, name):
        # No bias: the BatchNorm after every conv has its own.
        return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                       use_bias=False, dtype=self.dtype,
                       kernel_init=logical(nn.initializers.he_normal(), CONV_AXES), name=name)

    def _bn(self, train, name):
        # Scale 1, not the zero-init of a block's last BN (Goyal et al. 2017): in a net
        # this shallow, blocks that start as the identity only slow the first steps.
        return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                            epsilon=1e-5, dtype=self.dtype,
                            scale_init=ones(("mlp",)),
                            bias_init=zeros(("mlp",)), name=name)

    def strides(self):
        """(stage, block) -> stride, in order."""
        return [((s, b), 2 if s > 0 and b == 0 else 1)
                for s in range(len(self.stages)) for b in range(self.blocks)]

    @nn.compact
    def __call__(self, images_BxHxWxC, train: bool = False):
        if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:3] != (self.image_size,) * 2:
            raise BadInput(f"model.image_size={self.image_size}: expected B x "
                           f"{self.image_size} x {self.image_size} x C images, got "
                           f"{images_BxHxWxC.shape}")
        x = self._conv(self.stem, 3, 1, "stem")(images_BxHxWxC.astype(self.dtype))
        x = nn.relu(self._bn(train, "stem_bn")(x))
        for (s, b), stride in self.strides():
            c, name = self.stages[s], f"stage{s}_block{b}"
            shortcut = x
            if stride != 1 or x.shape[-1] != c:
                shortcut = self._conv(c, 1, stride, f"{name}_proj")(x)
                shortcut = self._bn(train, f"{name}_proj_bn")(shortcut)
            y = nn.relu(self._bn(train, f"{name}_bn1")(self._conv(c, 3, stride,
                                                                   f"{name}_conv1")(x)))
            y = self._bn(train, f"{name}_bn2")(self._conv(c, 3, 1,
                                                                        f"{name}_conv2")(y))
            x = nn.relu(y + shortcut)
        x = x.mean(axis=(1, 2))
        logits = Dense(self.num_classes, ("mlp", None), init_std=math.sqrt(1 / x.shape[-1]),
                       dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int = 1) -> float:
        """FLOPs per example, forward + backward = 3 x forward.

        Convs are `flops.conv_forward` (a stride-2 conv runs at the halved side); the
        head 2 x its kernel size. BatchNorm, ReLU, the residual adds and the pool are
        left out (a few percent)."""
        def conv(name, side):
            return flops.conv_forward(params[name]["kernel"], side * side)

        side = self.image_size
        forward = conv("stem", side) + 2.0 * math.prod(params["head"]["kernel"].shape)
        for (s, b), stride in self.strides():
            side = math.ceil(side / stride)
            name = f"stage{s}_block{b}"
            forward += conv(f"{name}_conv1", side) + conv(f"{name}_conv2", side)
            if f"{name}_proj" in params:
                forward += conv(f"{name}_proj", side)
        return 3.0 * forward


def resnet_config(name: str = "resnet", **overrides):
    """The `config.model` of the ResNet classifier: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
