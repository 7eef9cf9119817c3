"""Labelled images from a TFDS dataset (mnist, fashion_mnist, cifar10, imagenet2012,
...), read without TensorFlow through array_record data sources, one image at a time.

The first use downloads and prepares the dataset (online; ImageNet from its manual
download); later runs read the prepared files under `data.tfds_dir`. Nothing is loaded
whole: batches read, decode and augment their images on demand
(bigmodels/data/image_stream.py), in `data.workers` grain worker processes when > 0.
The splits are `data.train_split` and `data.eval_split`, at most `data.max_examples` of
each (0 = all). Statistics are fitted on the first `data.stats_examples` train images
and saved with the run. Augmentation: a random shift of up to 1/8 of the side
(`data.augment`) and a flip (`data.flip`) for fixed-size datasets; with
`data.random_resized_crop` (ImageNet), Inception's random crop to `data.image_size`
for training and a centre crop for eval. The eval counts every example once.
"""

import contextlib
import functools

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import augment as augment_lib
from bigmodels.data import image_stream, sklearn_data, tfds_source
from bigmodels.errors import BadInput

# (image side, channels) of the datasets the experiment files know by name.
KNOWN = {"mnist": (28, 1), "fashion_mnist": (28, 1), "cifar10": (32, 3), "cifar100": (32, 3)}
OFFLINE = ("the scikit-learn digits (the image experiments without a ':<dataset>' "
           "argument) or data.kind=image_folder (--config.data.path=<root>/<class>/*.png)")


def tfds_images_config(name: str, **overrides) -> ml_collections.ConfigDict:
    """The `config.data` of kind tfds_images."""
    data = sklearn_data.sklearn_data_config(name, standardize="global")
    data.kind = "tfds_images"
    for key, value in dict(image_key="image", max_examples=0, flip=False, workers=0,
                           stats_examples=50_000, random_resized_crop=False,
                           image_size=0, mock_examples=0).items():
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


def _readers(d):
    """(class names, train reader, eval reader), each i -> {"image", "y"} with a length.
    With `data.mock_examples` > 0, TFDS's random mock examples of the dataset's own
    features (variable-size images for ImageNet), read into memory: offline smoke runs."""
    mock = d.get("mock_examples", 0)
    context = (tfds.testing.mock_data(num_examples=mock,
                                      policy=tfds.testing.MockPolicy.USE_CODE)
               if mock > 0 else contextlib.nullcontext())
    with context:
        builder, train, eval_ = tfds_source.split_sources(d, (d.image_key, d.label_key),
                                                          OFFLINE)
        names = list(builder.info.features[d.label_key].names)
        readers = []
        for source in (train, eval_):
            read = image_stream.source_reader(source, d.image_key, d.label_key)
            count = min(len(source), d.max_examples) if d.max_examples else len(source)
            readers.append(image_stream.ListReader([read(i) for i in range(count)]) if mock
                           else image_stream.Limited(read, count))
    return names, *readers


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    tfds.disable_progress_bar()
    names, read_train, read_eval = _readers(d)
    crop = d.get("random_resized_crop", False)
    if crop:
        size = d.image_size
        if size < 1:
            raise BadInput("data.random_resized_crop: needs data.image_size, the side to "
                           "crop to (224 for ImageNet)")
        augment = [image_stream.RandomResizedCrop(size)] + ([augment_lib.RandomFlip()]
                                                           if d.flip else [])
        prepare_eval = functools.partial(image_stream.resize_center_crop, size=size)
    else:
        size = read_train(0)["image"].shape[0]
        augment = augment_lib.image_augmentations(size, d.augment, d.flip)
        prepare_eval = None
    channels = read_train(0)["image"].shape[-1]
    spec = sklearn_data.Spec("", {}, (size, size, channels), True)
    stats = image_stream.saved_or_streamed_stats(d, d.name, workdir, read_train,
                                                 len(read_train), prepare_eval)
    finish = sklearn_data.batch_maker(stats, spec, slice(None))
    train_ds, eval_ds = image_stream.streamed_batches(
        config, finish, read_train, len(read_train), read_eval, len(read_eval), augment,
        prepare_eval, process_index, process_count, d.get("workers", 0))
    return sklearn_data.TabularData(d.name, names, stats, train_ds, eval_ds)
