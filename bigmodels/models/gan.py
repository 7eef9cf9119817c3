"""A DCGAN-style generator and discriminator (Radford et al. 2016) for small images.

Generator: z -> dense -> s x s x C0 -> [transposed conv, stride 2 -> BatchNorm ->
ReLU] ... -> a transposed conv to the image's channels. It returns logits; pixels are
their sigmoid, in [0, 1] like data.standardize="unit". Discriminator: [strided conv
-> LeakyReLU(0.2)] ... -> dense -> one real-vs-fake logit, with no BatchNorm, so one
image's score never depends on the rest of its batch. Weights start from N(0, 0.02),
as in DCGAN.

The two are the top-level modules `generator` and `discriminator` of one `GAN`, so
that they are two parameter groups of one train state (optim.groups, and the
alternating updates of tasks/gan.py). The generator's BatchNorm statistics are the
model state `batch_stats/generator`.
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.errors import BadInput
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import logical, zeros

INIT_STD = 0.02
CONV_AXES = (None, None, "embed", "mlp")


def _conv_kernel_init():
    return logical(nn.initializers.normal(INIT_STD), CONV_AXES)


def start_side(image_shape, channels) -> int:
    """The side of the generator's first feature map: the image side halved once per
    upsampling."""
    side = image_shape[0] / 2 ** len(channels)
    if side != int(side) or side < 1 or image_shape[0] != image_shape[1]:
        raise BadInput(f"model.generator_channels: {len(channels)} upsamplings do not reach "
                       f"a {image_shape[0]}x{image_shape[1]} image from a whole square")
    return int(side)


class Generator(nn.Module):
    image_shape: tuple = (8, 8, 1)
    channels: tuple = (128, 64)       # widths before each 2x upsampling
    norm: str = "batch"               # batch | none
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, z_BxL, train: bool = False):
        """Latents -> pixel logits B x H x W x C."""
        s = start_side(self.image_shape, self.channels)
        x = Dense(s * s * self.channels[0], ("embed", "mlp"), init_std=INIT_STD,
                  dtype=self.dtype, name="project")(z_BxL)
        x = x.reshape((x.shape[0], s, s, self.channels[0]))
        widths = list(self.channels[1:]) + [self.image_shape[-1]]
        for i, width in enumerate(widths):
            x = self._norm(x, train, f"norm_{i}")
            x = nn.relu(x)
            x = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME",
                                 dtype=self.dtype, kernel_init=_conv_kernel_init(),
                                 bias_init=zeros(("mlp",)), name=f"up_{i}")(x)
        return x.astype(jnp.float32)

    def _norm(self, x, train, name):
        if self.norm == "none":
            return x
        if self.norm != "batch":
            raise BadInput(f"model.norm must be 'batch' or 'none', got {self.norm!r}")
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                            scale_init=logical(nn.initializers.ones, ("mlp",)),
                            bias_init=zeros(("mlp",)), axis_name=None, name=name)(x)


class Discriminator(nn.Module):
    channels: tuple = (64, 128)      # widths of the stride-2 convolutions
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, images_BxHxWxC):
        """Images -> real-vs-fake logits B."""
        x = images_BxHxWxC.astype(self.dtype)
        for i, width in enumerate(self.channels):
            x = nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                        kernel_init=_conv_kernel_init(), bias_init=zeros(("mlp",)),
                        name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        return Dense(1, ("embed", None), init_std=INIT_STD, dtype=self.dtype,
                     name="head")(x)[:, 0].astype(jnp.float32)


class GAN(nn.Module):
    image_shape: tuple = (8, 8, 1)
    latent_dim: int = 32
    generator_channels: tuple = (128, 64)
    discriminator_channels: tuple = (64, 128)
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.generator = Generator(tuple(self.image_shape), tuple(self.generator_channels),
                                   self.norm, self.dtype)
        self.discriminator = Discriminator(tuple(self.discriminator_channels), self.dtype)

    def __call__(self, z_BxL, images, train: bool = False):
        """(generated pixel logits, discriminator logits of `images`): creates both."""
        return self.generate(z_BxL, train), self.discriminate(images)

    def generate(self, z_BxL, train: bool = False):
        return self.generator(z_BxL, train)

    def discriminate(self, images):
        return self.discriminator(images)

    def train_flops_per_example(self, params) -> float:
        """FLOPs of one example's share of a step, forward + backward (3 x forward):
        the discriminator sees one real and one fake image in its update and one fake
        in the generator's, and the generator runs once in each. Model FLOPs: a
        transposed conv counts its taps over the real inputs, not over the zeros a
        dilated-input implementation inserts between them."""
        side = self.image_shape[0]
        d_forward = 0.0
        for i in range(len(self.discriminator_channels)):
            side = math.ceil(side / 2)
            d_forward += flops.conv_forward(params["discriminator"][f"conv_{i}"]["kernel"],
                                            side * side)
        d_forward += 2.0 * math.prod(params["discriminator"]["head"]["kernel"].shape)
        g = params["generator"]
        g_forward = 2.0 * math.prod(g["project"]["kernel"].shape)
        side = start_side(self.image_shape, self.generator_channels)
        for i in range(len(self.generator_channels)):
            g_forward += flops.conv_forward(g[f"up_{i}"]["kernel"], side * side)
            side *= 2
        return 3.0 * (3 * d_forward + 2 * g_forward)


def gan_config(name: str = "gan", **overrides):
    """The `config.model` of the GAN: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
