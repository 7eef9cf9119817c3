"""Writing predictions: JSON lines to a file (whole or not at all) or stdout, and
images as PNGs."""

import json
import os
import sys

import numpy as np

from bigmodels import images


def to_json(value):
    """numpy scalars and arrays as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def jsonl(records: list, output: str | None) -> None:
    """One JSON object per line to `output`, written to a temporary file and renamed so
    a failure leaves no partial file, or to stdout when `output` is None."""
    text = "".join(json.dumps(to_json(r), ensure_ascii=False) + "\n" for r in records)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with open(output + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(output + ".tmp", output)


def image_dir_for(output: str) -> str:
    """Where the PNGs of `output` (a .jsonl file) go: a directory beside it."""
    return os.path.splitext(os.path.abspath(output))[0] + "_images"


def png(image_HxWxC, directory: str, name: str) -> str:
    """Writes an image with values in [0, 1] as `directory/name.png` at its own size;
    returns the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".png")
    pixels = (np.clip(np.asarray(image_HxWxC, np.float32), 0, 1) * 255).round()
    with open(path, "wb") as f:
        f.write(images.png_bytes(pixels.astype(np.uint8), scale=1))
    return path
