"""Reconstruction (autoencoder) and the evidence lower bound (VAE) on images in [0, 1].

The likelihood is a Bernoulli per pixel, with grey levels as soft targets: the
reconstruction term is the summed sigmoid cross-entropy over pixels, in nats per image.
VAE: ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), the KL in closed form; the loss is
-ELBO. Eval reports eval/elbo (higher is better), eval/kl and eval/reconstruction, with
one z sample per image from a fixed key, so eval is deterministic. At each eval the
trainer writes `images/reconstructions_<step>.png` (originals above reconstructions)
and, for the VAE, `images/samples_<step>.png` (decoded z ~ N(0, I)).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from bigmodels.tasks.classify import example_weights
from bigmodels.tasks.base import Task

EVAL_KEY = 0
NUM_IMAGES = 16


def reconstruction_nats(logits, image):
    """-log p(x|z) per example: Bernoulli cross-entropy summed over every pixel."""
    per_pixel = optax.sigmoid_binary_cross_entropy(logits, image)
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(-1)


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per example."""
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)


def _weighted_sums(values: dict, w) -> dict:
    return {k: ((v * w).sum(), w.sum()) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class Autoencode(Task):
    model: nn.Module
    seq_len: int = 0

    image_outputs = ("reconstructions",)

    def init(self, rng, batch):
        return self.model.init({"params": rng, "latent": rng}, batch["image"])

    def _terms(self, params, batch, rng):
        logits, _ = self.model.apply({"params": params}, batch["image"])
        recon = reconstruction_nats(logits, batch["image"])
        mse = jnp.square(jax.nn.sigmoid(logits) - batch["image"])
        return {"loss": recon, "mse": mse.reshape(mse.shape[0], -1).mean(-1)}

    def loss(self, params, model_state, batch, rng, train=True):
        terms, w = self._terms(params, batch, rng), example_weights(batch)
        means = {k: (v * w).sum() / jnp.maximum(w.sum(), 1e-12) for k, v in terms.items()}
        return means["loss"], (means, model_state)

    def eval_sums(self, params, model_state, batch):
        terms = self._terms(params, batch, jax.random.key(EVAL_KEY))
        return _weighted_sums(terms, example_weights(batch))

    def eval_images(self, params, model_state, batch) -> dict:
        """Originals (top rows) above their reconstructions, as images in [0, 1]."""
        images = batch["image"][:NUM_IMAGES]
        logits = self.model.apply({"params": params}, images)[0]
        return {"reconstructions": jnp.concatenate([images, jax.nn.sigmoid(logits)])}

    def train_flops_per_example(self, params) -> float:
        return self.model.train_flops_per_example(params)


@dataclasses.dataclass(frozen=True)
class VariationalAutoencode(Autoencode):

    image_outputs = ("reconstructions", "samples")

    def _terms(self, params, batch, rng):
        logits, mean, logvar = self.model.apply({"params": params}, batch["image"],
                                                rngs={"latent": rng})
        recon = reconstruction_nats(logits, batch["image"])
        kl = gaussian_kl(mean, logvar)
        return {"loss": recon + kl, "elbo": -(recon + kl), "kl": kl, "reconstruction": recon}

    def eval_images(self, params, model_state, batch) -> dict:
        images = batch["image"][:NUM_IMAGES]
        key = jax.random.key(EVAL_KEY)
        logits = self.model.apply({"params": params}, images, rngs={"latent": key})[0]
        z = jax.random.normal(jax.random.fold_in(key, 1), (32, self.model.latent_dim))
        samples = self.model.apply({"params": params}, z, method=self.model.decode)
        return {"reconstructions": jnp.concatenate([images, jax.nn.sigmoid(logits)]),
                "samples": jax.nn.sigmoid(samples)}
