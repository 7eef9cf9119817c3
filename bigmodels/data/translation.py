"""Translation pairs from a TFDS dataset, read through `tfds.data_source` (array_record,
random access, no TensorFlow), e.g. `ted_hrlr_translate/pt_to_en`.

Each example is a dict of texts, one per language; `data.source_key` and
`data.target_key` pick the two sides. Tokens are UTF-8 bytes, so every language
encodes without building a vocabulary first. Sides longer than `data.source_len` /
`data.target_len` are cut to fit (keeping their <eos>).

Train batch i draws its examples uniformly at random from the train split, as a pure
function of (seed, i); each process reads only its own rows. Eval is the first
`data.eval_batches` full batches of the eval split, in order.

Online, `tfds.data_source(download=True)` downloads and prepares the dataset (once, as
array_record under data.tfds_dir); offline, that fails within seconds (tfds_source).
`data.mock_examples > 0` reads random mock examples instead (tfds.testing.mock_data), so
the pipeline runs offline.
"""

import contextlib

import grain
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import text_files, tfds_source, tokenizers
from bigmodels.data.seq2seq import Seq2SeqData, pack
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput, first_line
from bigmodels.names import SEQ2SEQ_SPECIALS as SPECIALS

_INFINITE = 2**62
OFFLINE = "--config.data.mock_examples=64 (TFDS mock examples, nothing downloaded)"


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _pairs(source, indices, source_key: str, target_key: str):
    records = [source[int(i)] for i in indices]
    try:
        return [(_text(r[source_key]), _text(r[target_key])) for r in records]
    except KeyError as e:
        raise BadInput(f"data.source_key / data.target_key: no field {e} in the examples "
                       f"(fields: {', '.join(sorted(records[0]))})") from None


def open_split(name: str, split: str, data_dir: str, download: bool):
    try:
        with tfds_source.few_retries():
            return tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except Exception as e:
        hint = tfds_source.offline_hint(OFFLINE) if tfds_source.is_network_error(e) else ""
        raise BadInput(f"data.name / split: cannot open {name!r} split {split!r}: "
                       f"{type(e).__name__}: {first_line(e)}{hint}") from None


def build(config, workdir: str, process_index: int = 0, process_count: int = 1) -> Seq2SeqData:
    d = config.data
    if d.tokenizer != "byte":
        raise BadInput(f"data.tokenizer: translation uses 'byte', got {d.tokenizer!r}")
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    for key in ("source_len", "target_len"):
        if d[key] < 2:
            raise BadInput(f"data.{key} must be at least 2 (a token and <eos>), got {d[key]}")
    data_dir = d.tfds_dir or text_files.default_data_dir()
    # mock_examples > 0: TFDS's random examples of the dataset's own features, with
    # nothing downloaded (smoke tests, offline); train and eval are then the same text.
    mock = (tfds.testing.mock_data(num_examples=d.mock_examples) if d.mock_examples > 0
            else contextlib.nullcontext())
    if d.mock_examples <= 0 and d.download:     # offline: fail in seconds, not minutes
        tfds_source.reachable_builder(d.name, data_dir, OFFLINE)
    with mock:
        train_source = open_split(d.name, d.train_split, data_dir, d.download)
        eval_source = open_split(d.name, d.eval_split, data_dir, d.download)
    b = config.batch_size
    eval_batches = min(d.eval_batches, len(eval_source) // b)
    if eval_batches < 1 or len(train_source) == 0:
        raise BadInput(f"data: {d.name} has {len(train_source)} train and "
                       f"{len(eval_source)} eval examples; eval needs at least one full "
                       f"batch of {b}")
    tokenizer = tokenizers.build("byte", b"", specials=SPECIALS)
    rows = rows_for_process(b, process_index, process_count)
    lengths = dict(tokenizer=tokenizer, source_len=d.source_len, target_len=d.target_len,
                   truncate=True)
    keys = (d.source_key, d.target_key)
    num_train = len(train_source)

    def train_batch(index, _):
        picks = np.random.default_rng((config.seed, index)).integers(0, num_train, size=b)
        return pack(_pairs(train_source, picks[rows], *keys), **lengths)

    def eval_batch(index, _):
        return pack(_pairs(eval_source, np.arange(index * b, (index + 1) * b)[rows], *keys),
                    **lengths)

    train = grain.MapDataset.range(_INFINITE).map_with_index(train_batch)
    eval_ = grain.MapDataset.range(eval_batches).map_with_index(eval_batch)
    return Seq2SeqData(tokenizer, train, eval_)
