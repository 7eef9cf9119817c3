"""Labelled text from a TFDS dataset (imdb_reviews, ag_news_subset, ...), read without
TensorFlow through `tfds.data_source` (array_record, random access).

The first use downloads and prepares the dataset (online); later runs read the
prepared files under `data.tfds_dir`. Text is byte-tokenized, cut to seq_len tokens
(with `[CLS] ... [SEP]` around it when `data.specials="bert"`) and padded; the batch
carries `lengths`. Train batch i draws random examples from (seed, i); eval reads the
first `eval_batches` batches of the eval split in order, so eval is fixed.
"""

import grain
import numpy as np

from bigmodels.data import tfds_source, tokenizers
from bigmodels.data.masked_lm import BERT_SPECIALS
from bigmodels.data.text_classes import ClassData
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput

_INFINITE = 2**62
OFFLINE = ("data.kind=text_classes with local files, one per class "
           "(--config.data.path=<a.txt>,<b.txt>,...)")


def encode_row(text, tokenizer, seq_len: int) -> np.ndarray:
    """Token ids of one example, cut to fit seq_len (with [CLS]/[SEP] if the tokenizer
    has them)."""
    bert = "[CLS]" in getattr(tokenizer, "specials", ())
    ids = tokenizer.encode(text if isinstance(text, (bytes, str)) else bytes(text))
    if not bert:
        return ids[:seq_len]
    return np.concatenate([[tokenizer.id("[CLS]")], ids[:seq_len - 2],
                           [tokenizer.id("[SEP]")]]).astype(np.int32)


def example_batches(source, indices_fn, tokenizer, seq_len: int, text_key: str,
                    label_key: str, rows: slice, num_batches: int) -> grain.MapDataset:
    """Item i: the rows of the batch of examples `indices_fn(i)` (global indices)."""
    pad = tokenizer.id("[PAD]") if "[PAD]" in getattr(tokenizer, "specials", ()) else 0

    def make_batch(index, _):
        examples = [source[int(j)] for j in indices_fn(index)[rows]]
        tokens = np.full((len(examples), seq_len), pad, np.int32)
        lengths = np.zeros(len(examples), np.int32)
        for r, example in enumerate(examples):
            ids = encode_row(example[text_key], tokenizer, seq_len)
            tokens[r, :len(ids)], lengths[r] = ids, max(len(ids), 1)
        labels = np.array([int(e[label_key]) for e in examples], np.int32)
        return {"tokens": tokens, "lengths": lengths, "label": labels}

    return grain.MapDataset.range(num_batches).map_with_index(make_batch)


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if d.tokenizer != "byte":
        raise BadInput(f"data.tokenizer: kind tfds_text_classes reads byte tokens, "
                       f"got {d.tokenizer!r}")
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    builder, train_source, eval_source = tfds_source.split_sources(
        d, (d.text_key, d.label_key), OFFLINE)
    label = builder.info.features[d.label_key]
    tokenizer = tokenizers.build("byte", b"", BERT_SPECIALS if d.specials == "bert" else ())
    seq_len = d.seq_len or config.model.context_length
    rows = rows_for_process(config.batch_size, process_index, process_count)
    b = config.batch_size
    eval_batches = min(d.eval_batches, len(eval_source) // b)
    if eval_batches < 1 or len(train_source) < b:
        raise BadInput(f"data.name={d.name!r}: splits of {len(train_source)} and "
                       f"{len(eval_source)} examples cannot fill a batch of {b}")
    common = dict(tokenizer=tokenizer, seq_len=seq_len, text_key=d.text_key,
                  label_key=d.label_key, rows=rows)
    train = example_batches(
        train_source, lambda i: np.random.default_rng((config.seed, i)).integers(
            0, len(train_source), b), num_batches=_INFINITE, **common)
    eval_ = example_batches(eval_source, lambda i: np.arange(i * b, (i + 1) * b),
                            num_batches=eval_batches, **common)
    return ClassData(tokenizer, list(label.names), train, eval_)
