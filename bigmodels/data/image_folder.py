"""Your own images as a TFDS dataset: `data.path` is a directory with one sub-directory
per class (`root/cat/*.jpg`, `root/dog/*.png`); the class names are the sorted
sub-directory names.

Each image is decoded with Pillow, converted to `data.channels` (1 = grayscale, 3 =
RGB) and resized to `data.image_size` squared, then written once as array_record
(uint8) under `data.tfds_dir`, with the same fixed, stratified split, preprocessing
and batches as the scikit-learn data (see sklearn_data). The builder is named by a
hash of the file list, sizes and mtimes, so changed images build a new version.
Augmentation (`data.augment`): a random shift of up to image_size/8 pixels (a
"random crop" of the zero-padded image), and with `data.flip` a random horizontal
flip (for natural images; never for digits or text).
"""

import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import augment, image_stream, sklearn_data
from bigmodels.data.local_builder import LocalBuilder
from bigmodels.data.text_files import default_data_dir
from bigmodels.errors import BadInput

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def image_folder_config(path: str = "", **overrides):
    """The `config.data` of kind image_folder."""
    data = sklearn_data.sklearn_data_config("", standardize="global")
    data.update(kind="image_folder", path=path)
    for key, value in dict(image_size=32, channels=3, flip=False, workers=0,
                           stats_examples=50_000).items():
        data[key] = value
    data.update(overrides)
    return data


def list_images(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(file, label)]) from root/<class>/<image>."""
    if not root or not os.path.isdir(root):
        raise BadInput(f"data.path: {root!r} is not a directory of class sub-directories")
    classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
    files = []
    for label, name in enumerate(classes):
        for dirpath, _, names in sorted(os.walk(os.path.join(root, name))):
            files += [(os.path.join(dirpath, f), label) for f in sorted(names)
                      if f.lower().endswith(EXTENSIONS)]
    counts = np.bincount([label for _, label in files], minlength=len(classes))
    if len(classes) < 2 or (counts < 2).any():
        raise BadInput(f"data.path: {root!r} needs at least 2 class sub-directories with "
                       f"at least 2 images each (found {dict(zip(classes, counts.tolist()))})")
    return classes, files


def decode(path: str, size: int, channels: int) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB").resize(
            (size, size), Image.BILINEAR)
        return np.asarray(image, np.uint8).reshape(size, size, channels)


class ImageFolder(LocalBuilder):
    """Images of root/<class>/ split into train / test."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, files, size: int, channels: int, val_fraction: float,
                 source: str = "data.path", **kwargs):
        self._files, self._size, self._channels = files, size, channels
        self._val_fraction = val_fraction
        h = hashlib.sha256(repr((size, channels, val_fraction,
                                 sklearn_data.SPLIT_SEED)).encode())
        for path, label in files:
            st = os.stat(path)
            h.update(f"{os.path.abspath(path)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\0"
                     .encode())
        super().__init__(source=source,
                         config=tfds.core.BuilderConfig(name="f" + h.hexdigest()[:16]),
                         file_format="array_record", **kwargs)

    def _info(self):
        shape = (self._size, self._size, self._channels)
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "index": np.int64,
            "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
            "label": np.int64,
        }))

    def _split_generators(self, dl_manager):
        labels = np.array([label for _, label in self._files])
        train, test = sklearn_data.split_indices(len(labels), self._val_fraction,
                                                 sklearn_data.SPLIT_SEED, labels)
        return {"train": self._generate_examples(train), "test": self._generate_examples(test)}

    def _generate_examples(self, indices):
        for i in indices:
            path, label = self._files[i]
            yield int(i), {"index": int(i), "label": label,
                           "image": decode(path, self._size, self._channels)}


def prepared(d):
    """(class names, the prepared ImageFolder builder) of `data.path`."""
    if d.channels not in (1, 3):
        raise BadInput(f"data.channels must be 1 or 3, got {d.channels}")
    if d.image_size < 1:
        raise BadInput(f"data.image_size must be positive, got {d.image_size}")
    if not 0.0 < d.val_fraction < 1.0:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    classes, files = list_images(os.path.expanduser(d.path))
    tfds.disable_progress_bar()
    builder = ImageFolder(files=files, size=d.image_size, channels=d.channels,
                          val_fraction=d.val_fraction, source=f"data.path={d.path}",
                          data_dir=d.tfds_dir or default_data_dir())
    builder.download_and_prepare()
    return classes, builder


def load_splits(d) -> tuple[list[str], dict]:
    """(class names, {"train"|"test": (row indices, images N x S x S x C uint8, labels)}),
    all in memory (for inspection; training streams them)."""
    classes, builder = prepared(d)
    splits = sklearn_data.indexed_splits(builder, "image", "label")
    return classes, {k: (i, x, y.astype(np.int64)) for k, (i, x, y) in splits.items()}


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    classes, builder = prepared(d)
    # Not the TFDS data source: it pickles its builder, which a local one cannot.
    read_train = image_stream.SplitReader(builder, "train", "image", "label")
    read_test = image_stream.SplitReader(builder, "test", "image", "label")
    spec = sklearn_data.Spec("", {}, (d.image_size, d.image_size, d.channels), True)
    # Statistics are tied to the folder, not a scikit-learn name.
    name = "image_folder:" + os.path.abspath(os.path.expanduser(d.path))
    stats = image_stream.saved_or_streamed_stats(d, name, workdir, read_train, len(read_train))
    finish = sklearn_data.batch_maker(stats, spec, slice(None))
    train_ds, eval_ds = image_stream.streamed_batches(
        config, finish, read_train, len(read_train), read_test, len(read_test),
        augment.image_augmentations(d.image_size, d.augment, d.flip), None, process_index,
        process_count, d.get("workers", 0))
    return sklearn_data.TabularData(name, classes, stats, train_ds, eval_ds)
