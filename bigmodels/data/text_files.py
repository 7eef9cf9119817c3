"""A TFDS builder that turns any local text file, directory or glob into a dataset.

The files are read in sorted order and concatenated; the first (1 - val_fraction)
of the bytes is the `train` split and the rest `validation` (nanoGPT's split). The
dataset is written as array_record, so it is read with random access and without
TensorFlow. Each builder config is named by a hash of the file list, sizes and
mtimes: editing a file builds a new version instead of reading a stale one.
"""

import glob
import hashlib
import os
import sysconfig

import numpy as np
import tensorflow_datasets as tfds

from bigmodels.errors import BadInput

CHUNK_BYTES = 1 << 20   # examples are 1 MiB chunks of the split, in order


def stdlib_sources() -> str:
    """A glob of the .py files of Python's standard library: real text on every machine."""
    return os.path.join(sysconfig.get_paths()["stdlib"], "*.py")


def resolve_paths(pattern: str) -> list[str]:
    """A file, a directory (all files below it) or a glob -> sorted file paths."""
    if not pattern:
        raise BadInput("data.path: no corpus given (set --config.data.path=<file|dir|glob>)")
    pattern = os.path.expanduser(pattern)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "**", "*")
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not paths:
        raise BadInput(f"data.path: no files match {pattern!r}")
    if sum(os.path.getsize(p) for p in paths) == 0:
        raise BadInput(f"data.path: {pattern!r} matches only empty files")
    return paths


def corpus_fingerprint(paths: list[str], val_fraction: float, max_bytes: int) -> str:
    h = hashlib.sha256(repr((val_fraction, max_bytes)).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return "c" + h.hexdigest()[:16]


def read_corpus(paths: list[str], max_bytes: int = 0) -> bytes:
    parts, total = [], 0
    for p in paths:
        with open(p, "rb") as f:
            parts.append(f.read())
        total += len(parts[-1])
        if max_bytes and total >= max_bytes:
            break
    corpus = b"\n".join(parts)
    return corpus[:max_bytes] if max_bytes else corpus


class LocalText(tfds.core.GeneratorBasedBuilder):
    """Concatenated local text files, split into train / validation by position."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, paths: list[str], val_fraction: float, max_bytes: int = 0, **kwargs):
        self._paths, self._val_fraction, self._max_bytes = paths, val_fraction, max_bytes
        name = corpus_fingerprint(paths, val_fraction, max_bytes)
        super().__init__(config=tfds.core.BuilderConfig(name=name),
                         file_format="array_record", **kwargs)

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "index": np.int64,   # TFDS shuffles examples; `index` restores corpus order
            "text": tfds.features.Tensor(shape=(), dtype=np.object_),   # raw bytes
        }))

    def _split_generators(self, dl_manager):
        corpus = read_corpus(self._paths, self._max_bytes)
        cut = int(len(corpus) * (1.0 - self._val_fraction))
        while 0 < cut < len(corpus) and (corpus[cut] & 0xC0) == 0x80:
            cut -= 1          # never split a UTF-8 character between the two splits
        return {"train": self._generate_examples(corpus[:cut]),
                "validation": self._generate_examples(corpus[cut:])}

    def _generate_examples(self, data: bytes):
        for i in range(0, max(len(data), 1), CHUNK_BYTES):
            yield i, {"index": i, "text": data[i:i + CHUNK_BYTES]}


def default_data_dir() -> str:
    return os.environ.get("BIGMODELS_DATA_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "bigmodels", "tfds"))


def load_splits(path: str, val_fraction: float, max_bytes: int = 0, data_dir: str = "",
                ) -> dict[str, bytes]:
    """Prepares the dataset once (cached under data_dir) and returns each split's bytes."""
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    tfds.disable_progress_bar()
    builder = LocalText(paths=resolve_paths(path), val_fraction=val_fraction,
                        max_bytes=max_bytes, data_dir=data_dir or default_data_dir())
    builder.download_and_prepare()
    splits = {}
    for split in ("train", "validation"):
        source = builder.as_data_source(split)
        records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["index"]))
        splits[split] = b"".join(bytes(r["text"]) for r in records)
    return splits
