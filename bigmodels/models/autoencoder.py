"""An autoencoder and a variational autoencoder (Kingma & Welling 2014) for small
images, built from the MLP of bigmodels/models/mlp.py.

Both decoders return per-pixel logits of a Bernoulli likelihood over intensities in
[0, 1] (data.standardize="unit"). The VAE's encoder returns the mean and log-variance of
q(z|x); `__call__` samples z = mean + exp(logvar / 2) * eps (the reparameterisation
trick, so gradients flow through the sample) with eps from the "latent" RNG stream.
"""

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.models import model_config
from bigmodels.models.mlp import MLP


class Autoencoder(nn.Module):
    image_shape: tuple = (8, 8, 1)
    latent_dim: int = 16
    hidden: tuple = (256, 128)
    activation: str = "relu"
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.encoder = MLP(self.latent_dim * self.latent_outputs, self.hidden,
                           self.activation, dtype=self.dtype)
        self.decoder = MLP(math.prod(self.image_shape), self.hidden[::-1], self.activation,
                           dtype=self.dtype)

    latent_outputs = 1          # the VAE's encoder also returns a log-variance

    def decode(self, z_BxL):
        """Latents -> pixel logits B x H x W x C."""
        return self.decoder(z_BxL).reshape((z_BxL.shape[0],) + tuple(self.image_shape))

    def __call__(self, image, train: bool = False):
        """Images -> (pixel logits of the reconstruction, latent codes)."""
        z = self.encoder(image)
        return self.decode(z), z

    def train_flops_per_example(self, params) -> float:
        return 6.0 * flops.matmul_param_count(params)


class VAE(Autoencoder):
    latent_outputs = 2

    def encode(self, image):
        """q(z|x): (mean, log-variance), each B x latent_dim."""
        mean, logvar = jnp.split(self.encoder(image), 2, axis=-1)
        return mean, logvar

    def __call__(self, image, train: bool = False):
        """Images -> (pixel logits of a reconstruction from a sampled z, mean, logvar)."""
        mean, logvar = self.encode(image)
        return self.decode(self.sample_latent(mean, logvar)), mean, logvar

    def sample_latent(self, mean, logvar):
        """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): differentiable in both."""
        eps = jax.random.normal(self.make_rng("latent"), mean.shape, mean.dtype)
        return mean + jnp.exp(0.5 * logvar) * eps


def autoencoder_config(name: str = "autoencoder", **overrides):
    """The `config.model` of an autoencoder (model autoencoder or vae): the module's field
    defaults, then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
