"""Text classification from local files: each file is one class ("which file is this
passage from?"), e.g. which standard-library module a snippet of code comes from.

`data.path` is a comma-separated list of files, globs or directories; every file they
match is one class, named after the file. Each file is split like any corpus (first
90% train, last 10% validation, as a TFDS dataset) so no validation passage overlaps a
training one. A passage is a random span of seq_len/2 to seq_len tokens from a random
class, padded to seq_len; the batch carries its `lengths` so models can mask padding.
Batch i is a pure function of (seed, i), as for language modelling.

With `data.specials="bert"` the tokenizer gains BERT's special tokens and each passage
is written `[CLS] passage [SEP]`, padded with `[PAD]`: the input a BERT classifier
fine-tuned from a masked-LM run expects.
"""

import dataclasses
import json
import os
import sysconfig

import grain
import numpy as np

from bigmodels.data import text_checks, text_files, tokenizers
from bigmodels.data.masked_lm import BERT_SPECIALS
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import CLASSES_FILE, TOKENIZER_FILE

_INFINITE = 2**62


@dataclasses.dataclass
class ClassData:
    tokenizer: object
    class_names: list
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset of the fixed held-out batches

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def save(self, workdir: str) -> None:
        tokenizers.save(self.tokenizer, os.path.join(workdir, TOKENIZER_FILE))
        with open(os.path.join(workdir, CLASSES_FILE), "w") as f:
            json.dump(self.class_names, f, indent=1)


# The offline "which module is this passage from?" task of lstm_classify and gpt_classify.
STDLIB_CLASSES = ("argparse", "tarfile", "smtplib", "turtle", "pydoc", "inspect")


def stdlib_modules(*names: str) -> str:
    """A `data.path` whose classes are modules of Python's own standard library."""
    stdlib = sysconfig.get_paths()["stdlib"]
    return ",".join(os.path.join(stdlib, name + ".py") for name in names)


def class_files(path: str, data_dir: str = "") -> list[str]:
    files = []
    for part in filter(None, (p.strip() for p in path.split(","))):
        files += text_files.resolve_paths(part, data_dir)
    files = sorted(set(files))
    if len(files) < 2:
        raise BadInput(f"data.path: classification needs at least 2 files (one per class), "
                       f"{path!r} matches {len(files)}")
    return files


def passage_batches(ids_per_class: list, seq_len: int, global_batch: int, seed: int,
                    process_index: int = 0, process_count: int = 1,
                    num_batches: int = _INFINITE, bert_ids: dict | None = None,
                    ) -> grain.MapDataset:
    """Item i: this process's rows of global batch i: tokens, lengths and labels.

    `bert_ids` ({"[CLS]": id, "[SEP]": id, "[PAD]": id}) wraps each passage in them."""
    shortest = min(len(ids) for ids in ids_per_class)
    if shortest < seq_len:
        raise BadInput(f"data: a class has only {shortest} tokens in a split, fewer than "
                       f"data.seq_len={seq_len}")
    rows = rows_for_process(global_batch, process_index, process_count)

    def make_batch(index, _):
        rng = np.random.default_rng((seed, index))
        labels = rng.integers(0, len(ids_per_class), size=global_batch)
        lengths = rng.integers(max(3, seq_len // 2), seq_len + 1, size=global_batch)
        tokens = np.zeros((global_batch, seq_len), np.int32)
        if bert_ids:
            tokens[:] = bert_ids["[PAD]"]
        for r, (label, length) in enumerate(zip(labels, lengths)):
            text = length - 2 if bert_ids else length
            source = ids_per_class[label]
            start = rng.integers(0, len(source) - text + 1)
            passage = source[start:start + text]
            if bert_ids:
                passage = np.concatenate([[bert_ids["[CLS]"]], passage, [bert_ids["[SEP]"]]])
            tokens[r, :length] = passage
        return {"tokens": tokens[rows], "lengths": lengths[rows].astype(np.int32),
                "label": labels[rows].astype(np.int32)}

    return grain.MapDataset.range(num_batches).map_with_index(make_batch)


def build(config, workdir: str, process_index: int = 0, process_count: int = 1) -> ClassData:
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    files = class_files(d.path, d.tfds_dir)
    tokenizer_path = os.path.join(workdir, TOKENIZER_FILE)
    resumed = os.path.exists(tokenizer_path)
    # All files at once, for one warning; skipped on resume as in text_files.load_splits.
    if not (resumed and all(text_files.is_prepared(f, d.val_fraction, d.max_bytes,
                                                   d.tfds_dir) for f in files)):
        text_checks.check_text(files, d.tokenizer, d.max_bytes, per_file=True)
    splits = [text_files.load_splits(f, d.val_fraction, d.max_bytes, d.tfds_dir) for f in files]
    if resumed:                                  # keep the run's own vocabulary
        tokenizer = tokenizers.load(tokenizer_path)
    else:
        tokenizer = tokenizers.build(d.tokenizer, b"".join(
            s["train"] + s["validation"] for s in splits),
            BERT_SPECIALS if d.specials == "bert" else ())
    bert_ids = ({n: tokenizer.id(n) for n in ("[CLS]", "[SEP]", "[PAD]")}
                if "[CLS]" in getattr(tokenizer, "specials", ()) else None)
    seq_len = d.seq_len or config.model.context_length
    common = dict(seq_len=seq_len, global_batch=config.batch_size, bert_ids=bert_ids,
                  process_index=process_index, process_count=process_count)
    train = passage_batches([tokenizer.encode(s["train"]) for s in splits],
                            seed=config.seed, **common)
    eval_ = passage_batches([tokenizer.encode(s["validation"]) for s in splits],
                            seed=config.seed + 1_000_003, num_batches=d.eval_batches, **common)
    names = [os.path.splitext(os.path.basename(f))[0] for f in files]
    return ClassData(tokenizer, names, train, eval_)
