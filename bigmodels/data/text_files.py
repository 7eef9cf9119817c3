"""A TFDS builder that turns any local text file, directory or glob into a dataset.

The files are read in sorted order and concatenated; the first (1 - val_fraction)
of the bytes is the `train` split and the rest `validation` (nanoGPT's split). The
dataset is written as array_record, so it is read with random access and without
TensorFlow. Each builder config is named by a hash of the file list, sizes and
mtimes: editing a file builds a new version instead of reading a stale one. A
`data.path` that is an http(s) URL is downloaded once into `<data dir>/urls` first.
"""

import glob
import hashlib
import os
import sysconfig

import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import downloads, text_checks
from bigmodels.data.local_builder import LocalBuilder
from bigmodels.errors import BadInput

CHUNK_BYTES = 1 << 20   # examples are 1 MiB chunks of the split, in order
# Karpathy's Tiny Shakespeare (1.1 MB), the default corpus of the char-level experiments.
TINY_SHAKESPEARE = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                    "tinyshakespeare/input.txt")


def stdlib_sources() -> str:
    """A glob of the .py files of Python's standard library: real text on every machine."""
    return os.path.join(sysconfig.get_paths()["stdlib"], "*.py")


def resolve_paths(pattern: str, data_dir: str = "") -> list[str]:
    """A file, a directory (all files below it), a glob or a URL -> sorted file paths."""
    if not pattern:
        raise BadInput("data.path: no corpus given (set --config.data.path=<file|dir|glob>)")
    if downloads.is_url(pattern):
        return [downloads.cached_url(pattern, os.path.join(data_dir or default_data_dir(),
                                                           "urls"))]
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


class LocalText(LocalBuilder):
    """Concatenated local text files, split into train / validation by position."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, paths: list[str], val_fraction: float, max_bytes: int = 0,
                 source: str = "", **kwargs):
        self._paths, self._val_fraction, self._max_bytes = paths, val_fraction, max_bytes
        name = corpus_fingerprint(paths, val_fraction, max_bytes)
        super().__init__(source=f"data.path={source or paths[0]}",
                         config=tfds.core.BuilderConfig(name=name),
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


def _local_text(paths: list[str], path: str, val_fraction: float, max_bytes: int,
                data_dir: str) -> LocalText:
    return LocalText(paths=paths, val_fraction=val_fraction, max_bytes=max_bytes,
                     source=path, data_dir=data_dir or default_data_dir())


def is_prepared(path: str, val_fraction: float, max_bytes: int = 0, data_dir: str = "",
                ) -> bool:
    """Whether load_splits finds the dataset of these arguments prepared."""
    paths = resolve_paths(path, data_dir)
    return _local_text(paths, path, val_fraction, max_bytes, data_dir).is_prepared()


def load_splits(path: str, val_fraction: float, max_bytes: int = 0, data_dir: str = "",
                tokenizer: str = "", resumed: bool = False) -> dict[str, bytes]:
    """Prepares the dataset once (cached under data_dir) and returns each split's bytes.
    With a `tokenizer` kind, the files are first checked to suit it (text_checks), unless
    the run is `resumed` (its tokenizer file exists) and the dataset is prepared."""
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    paths = resolve_paths(path, data_dir)
    tfds.disable_progress_bar()
    builder = _local_text(paths, path, val_fraction, max_bytes, data_dir)
    # A prepared dataset is named by the files' sizes and mtimes: on a resumed run they
    # are the files its first start checked, which the char check would read in full
    # again on every start, for nothing.
    if tokenizer and not (resumed and builder.is_prepared()):
        text_checks.check_text(paths, tokenizer, max_bytes)
    builder.download_and_prepare()
    splits = {}
    for split in ("train", "validation"):
        source = builder.as_data_source(split)
        records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["index"]))
        splits[split] = b"".join(bytes(r["text"]) for r in records)
    return splits
