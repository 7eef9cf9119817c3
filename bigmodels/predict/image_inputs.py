"""Images as a run's model saw them in training: decoded, converted to its channels and
resized by the data code's own `image_folder.decode`, scaled to the raw pixel range of
its dataset, then standardised with the statistics the run saved.

An input is a path, a PIL image or a numpy array: a uint8 array is an image like a
decoded file; a float array of the training shape holds raw training pixel values (a
row of scikit-learn's digits, 0 to 16) and is only standardised. The digits are light
ink on black, as the 8x8 scans are stored and as the autoencoders and GANs here write
them: a white pixel (255) is full ink (16).
"""

import io
import os
from typing import NamedTuple

import numpy as np

from bigmodels.data import image_folder, preprocess, sklearn_data, tfds_images
from bigmodels.errors import BadInput, first_line
from bigmodels.names import PREPROCESS_FILE

DIGITS_INK = 16.0          # scikit-learn's digits: pixel values 0 (blank) to 16 (ink)
EXTENSIONS = image_folder.EXTENSIONS


class ImageFormat(NamedTuple):
    shape: tuple           # H x W x C, what the model reads
    scale: float           # the raw training value of a pixel at 255


def image_format(config) -> ImageFormat | None:
    """The image format of a run's data, or None if it is not an image dataset."""
    d = config.data
    if d.kind == "toy_datasets":
        shape = sklearn_data.DATASETS[d.name].image_shape if d.name in \
            sklearn_data.DATASETS else None
        return ImageFormat(tuple(shape), DIGITS_INK / 255.0) if shape else None
    if d.kind == "image_folder":
        return ImageFormat((d.image_size, d.image_size, d.channels), 1.0)
    if d.kind == "tfds_images":
        side, channels = tfds_images.KNOWN.get(d.name, (0, 0))
        shape = tuple(config.model.get("image_shape", ())) or (side, side, channels)
        if not all(shape):
            raise BadInput(f"--workdir: cannot tell the image size of TFDS dataset "
                           f"{d.name!r}")
        return ImageFormat(shape, 1.0)
    return None


def load_standardizer(run_dir: str) -> preprocess.Standardizer:
    path = os.path.join(run_dir, PREPROCESS_FILE)
    if not os.path.isfile(path):
        raise BadInput(f"--workdir: {path} not found; the run's pixel statistics are needed")
    return preprocess.load(path)["features"]


def _decode(source, name: str, fmt: ImageFormat) -> np.ndarray:
    height, width, channels = fmt.shape
    try:
        pixels = image_folder.decode(source, height, channels)
    except Exception as e:               # Pillow's errors for a file that is no image
        raise BadInput(f"--input: {name} is not a readable image "
                       f"({type(e).__name__}: {first_line(e)})") from None
    if width != height:
        raise BadInput(f"--workdir: non-square images ({height}x{width}) are not supported")
    return pixels.astype(np.float64) * fmt.scale


def raw_pixels(item, fmt: ImageFormat, index: int = 0) -> np.ndarray:
    """One input as an H x W x C array of raw training pixel values."""
    from PIL import Image
    if isinstance(item, (str, os.PathLike)):
        if not os.path.isfile(item):
            raise BadInput(f"--input: {item} not found")
        return _decode(item, str(item), fmt)
    if isinstance(item, np.ndarray) and item.dtype != np.uint8:
        h, w, c = fmt.shape
        if item.shape not in ((h, w, c), (h, w) if c == 1 else None, (h * w * c,)):
            raise BadInput(f"input {index}: a float array must hold raw pixels of shape "
                           f"{fmt.shape}, got {item.shape}")
        return np.asarray(item, np.float64).reshape(fmt.shape)
    if isinstance(item, np.ndarray):
        item = Image.fromarray(item.squeeze(-1) if item.ndim == 3 and item.shape[-1] == 1
                               else item)
    if not isinstance(item, Image.Image):
        raise BadInput(f"input {index}: an image model takes paths, PIL images or numpy "
                       f"arrays, got {type(item).__name__}")
    buffer = io.BytesIO()
    try:
        item.save(buffer, "PNG")         # lossless: decoded exactly as a file would be
    except (OSError, ValueError) as e:
        raise BadInput(f"input {index}: not an image Pillow can write as PNG "
                       f"({first_line(e)})") from None
    buffer.seek(0)
    return _decode(buffer, f"input {index}", fmt)


def standardized(items, fmt: ImageFormat, standardizer) -> np.ndarray:
    """N x H x W x C float32 model inputs."""
    raw = np.stack([raw_pixels(item, fmt, i) for i, item in enumerate(items)])
    return standardizer.apply(raw)


def input_name(item, index: int) -> str | int:
    """How a prediction names its input: a path as itself, anything else by position."""
    return str(item) if isinstance(item, (str, os.PathLike)) else index
