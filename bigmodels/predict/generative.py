"""Generative models: autoencoder and VAE reconstructions of images, GAN samples.

Images come back as H x W x C arrays in [0, 1] or, given an `image_dir`, as PNGs there
at the model's resolution (the record then holds the path). A VAE reconstructs from
the mean of q(z|x), so a reconstruction is deterministic; `mse` is the mean squared
error per pixel against the prepared input, as the autoencoders' eval/mse.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.errors import BadInput
from bigmodels.predict import image_inputs, inputs, writing
from bigmodels.predict.loading import check_model_state
from bigmodels.tasks.gan import GAN


def _image_record(image, image_dir: str | None, name: str) -> dict:
    if image_dir is None:
        return {"image": image}
    return {"path": writing.png(image, image_dir, name)}


class Reconstructor:
    input_kind = "image"
    options = ("image_dir",)

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        self.format = image_inputs.image_format(config)
        if self.format is None:
            raise BadInput(f"--workdir: {loaded.run_dir} trained on data.kind="
                           f"{config.data.kind}, not images")
        self.standardizer = image_inputs.load_standardizer(loaded.run_dir)
        check_model_state(loaded, lambda rng: model.init(
            {"params": rng, "latent": rng}, jnp.zeros((1,) + self.format.shape)))
        variational = config.task == "vae"

        def reconstruct(c, batch):
            variables = {"params": c["params"]}
            if variational:
                mean, _ = model.apply(variables, batch["image"], method=model.encode)
                logits = model.apply(variables, mean, method=model.decode)
            else:
                logits, _ = model.apply(variables, batch["image"])
            return jax.nn.sigmoid(logits)

        self.batcher = batcher
        self.consts = batcher.place({"params": loaded.params})
        self.forward = batcher.jit(reconstruct)

    def read(self, path: str) -> list[str]:
        return inputs.files(path, image_inputs.EXTENSIONS, "image")

    def predict(self, images, image_dir: str | None = None) -> list[dict]:
        """`images`: paths, PIL images or arrays, or one path (a file or a directory);
        `image_dir`: where to write the reconstructions as PNGs."""
        images = self.read(str(images)) if isinstance(images, (str, os.PathLike)) \
            else list(images)
        if not images:
            return []
        x = image_inputs.standardized(images, self.format, self.standardizer)
        recon = self.batcher.map(self.forward, self.consts, {"image": x})
        records = []
        for i, (item, original, image) in enumerate(zip(images, x, recon)):
            name = image_inputs.input_name(item, i)
            stem = (os.path.splitext(os.path.basename(name))[0] if isinstance(name, str)
                    else "input")
            records.append({"input": name,
                            "mse": float(np.mean((image - original) ** 2)),
                            **_image_record(image, image_dir, f"{i:05d}_{stem}")})
        return records


class Sampler:
    input_kind = "none"
    options = ("num_samples", "seed", "image_dir")

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        task = GAN(model)
        self.latent_dim = model.latent_dim
        shape = tuple(config.model.image_shape)
        check_model_state(loaded, lambda rng: task.init(
            rng, {"image": jnp.zeros((1,) + shape)}))
        self.batcher = batcher
        self.consts = batcher.place({"params": loaded.params,
                                     "model_state": loaded.model_state})
        self.forward = batcher.jit(lambda c, batch: task.generate(
            c["params"], c["model_state"], batch["z"])[0])

    def read(self, path: str):
        raise BadInput("--input: a GAN takes no input; it draws --num_samples images")

    def predict(self, num_samples: int = 16, seed: int = 0,
                image_dir: str | None = None) -> list[dict]:
        """`num_samples` images from noise drawn with `seed`."""
        if num_samples < 1:
            raise BadInput(f"--num_samples must be positive, got {num_samples}")
        z = np.asarray(jax.random.normal(jax.random.key(seed),
                                         (num_samples, self.latent_dim)))
        samples = self.batcher.map(self.forward, self.consts, {"z": z})
        return [{"sample": i, **_image_record(image, image_dir, f"sample_{i:05d}")}
                for i, image in enumerate(samples)]
