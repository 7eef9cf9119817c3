"""ResNets (He et al. 2016, post-activation "v1") for NHWC images, from the small ones
of the digits experiments to ResNet-50:

    stem: conv k x k (stride 1 or 2) -> BN -> ReLU [-> 3x3 max-pool, stride 2]
    stages of residual blocks, y = ReLU(F(x) + shortcut(x)) with F either
        basic:      BN(conv3x3(ReLU(BN(conv3x3(x)))))
        bottleneck: BN(conv1x1 to 4c(ReLU(BN(conv3x3(ReLU(BN(conv1x1 to c(x))))))))
        The first block of every stage after the first halves the side (stride 2, in the
        3x3 conv: "v1.5"); a shortcut whose shape changes is a 1x1 strided conv + BN.
    global average pool -> dense head

ResNet-50 is `stem_kernel=7, stem_stride=2, stem_pool=True, stages=(64, 128, 256, 512),
stage_blocks=(3, 4, 6, 3), bottleneck=True` (`resnet50_config`).

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
    stages: tuple = (32, 64)          # channels per stage (a bottleneck's inner width)
    blocks: int = 2                   # residual blocks per stage
    stage_blocks: tuple = ()          # blocks of each stage, when they differ (ResNet-50)
    stem_kernel: int = 3
    stem_stride: int = 1
    stem_pool: bool = False           # 3x3 max-pool, stride 2, after the stem
    bottleneck: bool = False          # 1x1 -> 3x3 -> 1x1 blocks, 4x wider out
    zero_init_residual: bool = False  # each block's last BN scale 0: blocks start as identity
    bn_momentum: float = 0.9          # running-average decay; short runs need < 0.99
    dtype: jnp.dtype = jnp.float32

    def _conv(self, features, kernel, stride, name):
        # No bias: the BatchNorm after every conv has its own.
        return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                       use_bias=False, dtype=self.dtype,
                       kernel_init=logical(nn.initializers.he_normal(), CONV_AXES), name=name)

    def _bn(self, train, name, last: bool = False):
        # Scale 1 by default, not the zero-init of a block's last BN (Goyal et al. 2017):
        # in a net as shallow as the digits', blocks that start as the identity only
        # slow the first steps. ResNet-50 turns it on (`zero_init_residual`).
        zero = last and self.zero_init_residual
        return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                            epsilon=1e-5, dtype=self.dtype,
                            scale_init=zeros(("mlp",)) if zero else ones(("mlp",)),
                            bias_init=zeros(("mlp",)), name=name)

    def _blocks(self, stage: int) -> int:
        return self.stage_blocks[stage] if self.stage_blocks else self.blocks

    def strides(self):
        """(stage, block) -> stride, in order."""
        return [((s, b), 2 if s > 0 and b == 0 else 1)
                for s in range(len(self.stages)) for b in range(self._blocks(s))]

    def _residual(self, x, c, stride, name, train):
        """F(x) of one block (see the docstring); its output has c or 4c channels."""
        if not self.bottleneck:
            y = nn.relu(self._bn(train, f"{name}_bn1")(self._conv(c, 3, stride,
                                                                   f"{name}_conv1")(x)))
            return self._bn(train, f"{name}_bn2", last=True)(self._conv(c, 3, 1,
                                                                        f"{name}_conv2")(y))
        y = nn.relu(self._bn(train, f"{name}_bn1")(self._conv(c, 1, 1, f"{name}_conv1")(x)))
        y = nn.relu(self._bn(train, f"{name}_bn2")(self._conv(c, 3, stride,
                                                               f"{name}_conv2")(y)))
        return self._bn(train, f"{name}_bn3", last=True)(self._conv(4 * c, 1, 1,
                                                                    f"{name}_conv3")(y))

    @nn.compact
    def __call__(self, images_BxHxWxC, train: bool = False):
        if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:3] != (self.image_size,) * 2:
            raise BadInput(f"model.image_size={self.image_size}: expected B x "
                           f"{self.image_size} x {self.image_size} x C images, got "
                           f"{images_BxHxWxC.shape}")
        x = self._conv(self.stem, self.stem_kernel, self.stem_stride, "stem")(
            images_BxHxWxC.astype(self.dtype))
        x = nn.relu(self._bn(train, "stem_bn")(x))
        if self.stem_pool:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for (s, b), stride in self.strides():
            name = f"stage{s}_block{b}"
            c_out = self.stages[s] * (4 if self.bottleneck else 1)
            shortcut = x
            if stride != 1 or x.shape[-1] != c_out:
                shortcut = self._conv(c_out, 1, stride, f"{name}_proj")(x)
                shortcut = self._bn(train, f"{name}_proj_bn")(shortcut)
            x = nn.relu(self._residual(x, self.stages[s], stride, name, train) + shortcut)
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

        side = math.ceil(self.image_size / self.stem_stride)
        forward = conv("stem", side) + 2.0 * math.prod(params["head"]["kernel"].shape)
        if self.stem_pool:
            side = math.ceil(side / 2)
        for (s, b), stride in self.strides():
            name = f"stage{s}_block{b}"
            # A bottleneck's first 1x1 runs before the stride, at the input's side.
            if self.bottleneck:
                forward += conv(f"{name}_conv1", side)
            side = math.ceil(side / stride)
            convs = ("conv2", "conv3") if self.bottleneck else ("conv1", "conv2")
            forward += sum(conv(f"{name}_{c}", side) for c in convs)
            if f"{name}_proj" in params:
                forward += conv(f"{name}_proj", side)
        return 3.0 * forward


def resnet_config(name: str = "resnet", **overrides):
    """The `config.model` of the ResNet classifier: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)


def resnet50_config(**overrides):
    """ResNet-50 (25.6M params at 1000 classes) for 224 x 224 images."""
    return resnet_config(**{**dict(image_size=224, stem=64, stem_kernel=7, stem_stride=2,
                                   stem_pool=True, stages=(64, 128, 256, 512),
                                   stage_blocks=(3, 4, 6, 3), bottleneck=True,
                                   zero_init_residual=True, bn_momentum=0.9), **overrides})
