"""Adversarial training (a GAN), with alternating updates of two parameter groups.

Each train step makes two updates in turn (`update_groups`; regimes/alternating.py): first the
discriminator on real images and a fresh batch of fakes, then the generator against
the updated discriminator. Both use the non-saturating losses of Goodfellow et al.
(2014), written with softplus so that they are stable for any logit:

    discriminator: -log D(x) - log(1 - D(G(z))) = softplus(-d(x)) + softplus(d(G(z)))
    generator:     -log D(G(z))                 = softplus(-d(G(z)))

Each update differentiates only its own group, and the other group's params and
optimizer state stay bit-unchanged. The generator's BatchNorm statistics only move in
its own update (the discriminator's update samples fakes in train mode but keeps the
statistics as they were).

Eval pairs test example k with the fake from noise seed k (the batch's `id`), so the
eval is the same on any mesh and batch size. It reports eval/loss_discriminator,
eval/loss_generator, their sum eval/loss, the mean D(x) on real and fake images, and with a feature
classifier (`fid_classifier`), eval/fid: the Fréchet distance between the test
images and as many fakes, in the classifier's features. At each eval the trainer
writes `images/samples_<step>.png` from a fixed batch of noise.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
from flax import linen as nn

from bigmodels.errors import BadInput
from bigmodels.metrics import frechet
from bigmodels.names import CONFIG_FILE, PREPROCESS_FILE
from bigmodels.tasks.classify import example_weights
from bigmodels.tasks.base import Task

EVAL_KEY = 0
NUM_SAMPLES = 64


def load_feature_net(workdir: str, pixels, key: str = "fid_classifier"):
    """The feature function (frechet.FeatureNet) of the classifier run in `workdir`: its
    config, pixel statistics and params. `pixels`: the Standardizer that put the
    caller's images into their space."""
    import ml_collections
    from bigmodels import checkpoint, models
    from bigmodels.data import preprocess
    config_path = os.path.join(workdir, CONFIG_FILE)
    stats_path = os.path.join(workdir, PREPROCESS_FILE)
    for path in (config_path, stats_path):
        if not os.path.isfile(path):
            raise BadInput(f"{key}: {path} not found; train the classifier first "
                           f"(e.g. experiments/digits_cnn.py into {workdir})")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    classifier = preprocess.load(stats_path)["features"]
    scale, shift = frechet.pixel_map(classifier, pixels, key)
    return frechet.FeatureNet(models.build(config.model), checkpoint.load(workdir), scale, shift)


def _mean(values, w):
    return (values * w).sum() / jnp.maximum(w.sum(), 1e-12)


@dataclasses.dataclass(frozen=True)
class GAN(Task):
    model: nn.Module
    features: frechet.FeatureNet | None = None
    update_groups: tuple = ("discriminator", "generator")     # updated in this order
    image_outputs = ("samples",)

    @classmethod
    def from_config(cls, config, model, data=None):
        path = config.get("fid_classifier", "")
        if not path:
            return cls(model)
        stats = getattr(data, "stats", {})
        if "features" not in stats:
            raise BadInput("fid_classifier: needs image data with saved pixel statistics "
                           "(data.kind=toy_datasets)")
        return cls(model, load_feature_net(path, stats["features"], key="fid_classifier"))

    def init(self, rng, batch):
        z = jnp.zeros((1, self.model.latent_dim), jnp.float32)
        return self.model.init({"params": rng}, z, batch["image"])

    def generate(self, params, model_state, z, train=False):
        """(images in [0, 1], the model state after a train-mode call)."""
        variables = {"params": params, **model_state}
        if train and model_state:
            logits, updates = self.model.apply(variables, z, train=True, mutable=list(model_state),
                                               method=self.model.generate)
            return jax.nn.sigmoid(logits), {**model_state, **updates}
        logits = self.model.apply(variables, z, train=train, method=self.model.generate)
        return jax.nn.sigmoid(logits), model_state

    def discriminate(self, params, images):
        return self.model.apply({"params": params}, images, method=self.model.discriminate)

    def loss(self, params, model_state, batch, rng, train=True, group=None):
        real, w = batch["image"], example_weights(batch)
        z = jax.random.normal(rng, (real.shape[0], self.model.latent_dim))
        if group == "discriminator":
            fake, _ = self.generate(params, model_state, z, train)   # statistics kept as they were
            d_real, d_fake = self.discriminate(params, real), self.discriminate(params, fake)
            loss = _mean(jax.nn.softplus(-d_real) + jax.nn.softplus(d_fake), w)
            return loss, ({"loss": loss, "d_real": _mean(jax.nn.sigmoid(d_real), w),
                           "d_fake": _mean(jax.nn.sigmoid(d_fake), w)}, model_state)
        if group == "generator":
            fake, model_state = self.generate(params, model_state, z, train)
            loss = _mean(jax.nn.softplus(-self.discriminate(params, fake)), w)
            return loss, ({"loss": loss}, model_state)
        raise ValueError(f"group must be one of {self.update_groups}, got {group!r}")

    def eval_noise(self, ids):
        key = jax.random.key(EVAL_KEY)
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i),
                                                    (self.model.latent_dim,)))(ids)

    def eval_sums(self, params, model_state, batch):
        real, w = batch["image"], example_weights(batch)
        fake, _ = self.generate(params, model_state, self.eval_noise(batch["id"]))
        d_real, d_fake = self.discriminate(params, real), self.discriminate(params, fake)
        n = w.sum()
        d_loss = jax.nn.softplus(-d_real) + jax.nn.softplus(d_fake)
        g_loss = jax.nn.softplus(-d_fake)
        sums = {"loss": (((d_loss + g_loss) * w).sum(), n),     # as train/loss: the sum
                "loss_discriminator": ((d_loss * w).sum(), n),
                "loss_generator": ((g_loss * w).sum(), n),
                "d_real": ((jax.nn.sigmoid(d_real) * w).sum(), n),
                "d_fake": ((jax.nn.sigmoid(d_fake) * w).sum(), n)}
        if self.features is not None:
            for name, images in (("real", real), ("fake", fake)):
                total, outer, count = frechet.feature_sums(self.features(images), w)
                sums[f"{name}_features"] = (total, count)
                sums[f"{name}_outer"] = (outer, count)
        return sums

    def finalize_eval(self, sums: dict) -> dict:
        out = {k: s / max(w, 1e-12) for k, (s, w) in sums.items()
               if not k.endswith(("_features", "_outer"))}
        if "real_features" in sums:
            real, fake = (frechet.moments(sums[f"{n}_features"][0], sums[f"{n}_outer"][0],
                                          sums[f"{n}_features"][1]) for n in ("real", "fake"))
            out["fid"] = frechet.frechet_distance(*real, *fake)
        return out

    def eval_images(self, params, model_state, batch) -> dict:
        z = self.eval_noise(jnp.arange(NUM_SAMPLES) + 10**6)   # not any test example's noise
        return {"samples": self.generate(params, model_state, z)[0]}

    def train_flops_per_example(self, params) -> float:
        return self.model.train_flops_per_example(params)
