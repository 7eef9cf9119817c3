"""Labelled images from a TFDS dataset (mnist, fashion_mnist, cifar10, ...), read
without TensorFlow through array_record data sources.

The first use downloads and prepares the dataset (online); later runs read the
prepared files under `data.tfds_dir`. The splits (`data.train_split`,
`data.eval_split`, at most `data.max_examples` of each, 0 = all) are read into memory
as uint8, which suits datasets of the size of CIFAR (150 MB) and below. From there on
it is the same pipeline as the scikit-learn and image-folder data: statistics fitted
on train only and saved with the run, grain shuffling and augmentation (a random
shift of up to 1/8 of the side; `data.flip` for natural images), and an eval that
counts every example once.
"""

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import augment, sklearn_data, tfds_source
from bigmodels.errors import BadInput

# (image side, channels) of the datasets the experiment files know by name.
KNOWN = {"mnist": (28, 1), "fashion_mnist": (28, 1), "cifar10": (32, 3), "cifar100": (32, 3)}
OFFLINE = ("the scikit-learn digits (the image experiments without a ':<dataset>' "
           "argument) or data.kind=image_folder (--config.data.path=<root>/<class>/*.png)")


def tfds_images_config(name: str, **overrides) -> ml_collections.ConfigDict:
    """The `config.data` of kind tfds_images."""
    data = sklearn_data.sklearn_data_config(name, standardize="global")
    data.kind = "tfds_images"
    for key, value in dict(image_key="image", max_examples=0, flip=False).items():
        data[key] = value
    data.update(overrides)
    return data


def image_experiment(config, name: str) -> None:
    """Points an image experiment at TFDS dataset `name` (one of KNOWN): its data, with
    the experiment's pixel scaling and augmentation, and the model's input size."""
    side, channels = KNOWN[name]
    config.data = tfds_images_config(name, augment=config.data.augment,
                                     standardize=config.data.standardize,
                                     flip=name.startswith("cifar"))
    for key, value in (("image_size", side), ("image_shape", (side, side, channels)),
                       ("patch_size", 4)):     # a ViT: 49 or 64 tokens, not 196 or 256
        if key in config.model:
            config.model[key] = value


def _read(source, image_key: str, label_key: str, limit: int):
    n = min(len(source), limit) if limit else len(source)
    images, labels = [], []
    for i in range(n):
        record = source[i]
        images.append(np.asarray(record[image_key], np.uint8))
        labels.append(int(record[label_key]))
    return np.stack(images), np.asarray(labels, np.int64)


def load(d):
    """(class names, (train images, labels), (eval images, labels))."""
    builder, train, eval_ = tfds_source.split_sources(d, (d.image_key, d.label_key),
                                                      OFFLINE)
    label = builder.info.features[d.label_key]
    return (list(label.names), _read(train, d.image_key, d.label_key, d.max_examples),
            _read(eval_, d.image_key, d.label_key, d.max_examples))


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    tfds.disable_progress_bar()
    names, (train_x, train_y), (test_x, test_y) = load(d)
    spec = sklearn_data.Spec("", {}, train_x.shape[1:], True)
    stats = sklearn_data.fitted_or_saved_stats(d, spec, workdir, train_x, train_y)
    train, eval_ = sklearn_data.batches(config, spec, stats, (train_x, train_y),
                                        (test_x, test_y),
                                        augment.image_augmentations(train_x.shape[1], d.augment,
                                                                    d.flip), process_index,
                                        process_count)
    return sklearn_data.TabularData(d.name, names, stats, train, eval_)
