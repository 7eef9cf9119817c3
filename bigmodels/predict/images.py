"""Image classifiers (digits_cnn, digits_mlp, digits_resnet, digits_vit,
digits_finetune, image-folder and TFDS image runs): an image file, or a directory of
them -> label and probabilities, the images prepared as in training
(predict/image_inputs.py)."""

import os

import jax.numpy as jnp
import numpy as np

from bigmodels.data import sklearn_data
from bigmodels.predict import base, image_inputs, inputs
from bigmodels.predict.loading import check_model_state


def class_names(config) -> list | None:
    """The class names of an image run's data, where they can be told without it."""
    d = config.data
    if d.kind == "toy_datasets":
        names = sklearn_data.load_arrays(d.name)[2]
        if d.get("classes"):
            ids = np.arange(len(names))
            names = sklearn_data.select_classes(ids[:, None], ids, names, d.classes)[2]
        return names
    if d.kind == "image_folder" and os.path.isdir(os.path.expanduser(d.path)):
        return folder_classes(os.path.expanduser(d.path))
    return None


def folder_classes(root: str) -> list[str]:
    """The image-folder data's class names: its sorted sub-directories."""
    return sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))


class ImageClassifier:
    input_kind = "image"
    options = ()

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        self.task = config.task
        self.format = image_inputs.image_format(config)
        self.standardizer = image_inputs.load_standardizer(loaded.run_dir)
        self.names = base.with_default_names(class_names(config),
                                             base.output_count(self.task, config))
        check_model_state(loaded, lambda rng: model.init(
            rng, jnp.zeros((1,) + self.format.shape, jnp.float32)))
        self.batcher = batcher
        self.consts, self.forward = base.classifier_forward(loaded, batcher)

    def read(self, path: str) -> list[str]:
        return inputs.files(path, image_inputs.EXTENSIONS, "image")

    def predict(self, images) -> list[dict]:
        """`images`: a list of paths, PIL images or arrays, or one path (a file or a
        directory of images)."""
        images = self.read(str(images)) if isinstance(images, (str, os.PathLike)) \
            else list(images)
        if not images:
            return []
        x = image_inputs.standardized(images, self.format, self.standardizer)
        logits = self.batcher.map(self.forward, self.consts, {"image": x})
        return [{"input": image_inputs.input_name(item, i), **r} for i, (item, r) in
                enumerate(zip(images, base.score_records(self.task, logits, self.names)))]
