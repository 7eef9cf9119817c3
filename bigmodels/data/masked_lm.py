"""Masked-language-model data (BERT) from local text.

Each row is `[CLS] A [SEP] B [SEP]` then `[PAD]`s, where A and B are consecutive spans
of the corpus cut at a random point; `segments` is 0 over `[CLS] A [SEP]` and 1 over
`B [SEP]`. Rows are seq_len/2 to seq_len tokens long, so every batch exercises the
padding mask. 15% of the text tokens (never specials or padding) are selected for
prediction: 80% of those become `[MASK]`, 10% a random token and 10% stay as they are
(Devlin et al. 2019). Masks are drawn on the host from (seed, batch index), so eval
batches are fixed and a resumed run sees the same masks.
"""

import dataclasses
import os

import grain
import numpy as np

from bigmodels.data import text_files, tokenizers
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import TOKENIZER_FILE

BERT_SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
_INFINITE = 2**62


@dataclasses.dataclass
class MaskedLMData:
    tokenizer: object
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset of the fixed held-out batches

    def save(self, workdir: str) -> None:
        tokenizers.save(self.tokenizer, os.path.join(workdir, TOKENIZER_FILE))


def mask_tokens(rng: np.random.Generator, tokens: np.ndarray, maskable: np.ndarray,
                mask_id: int, random_vocab: int, rate: float = 0.15):
    """(inputs, selected): BERT's 80/10/10 corruption of a `rate` share of `maskable`."""
    selected = maskable & (rng.random(tokens.shape) < rate)
    action = rng.random(tokens.shape)
    inputs = np.where(selected & (action < 0.8), mask_id, tokens)
    replace = selected & (action >= 0.8) & (action < 0.9)
    inputs = np.where(replace, rng.integers(0, random_vocab, tokens.shape), inputs)
    return inputs.astype(np.int32), selected


def pair_row(ids: np.ndarray, rng: np.random.Generator, length: int, special) -> tuple:
    """One `[CLS] A [SEP] B [SEP]` row of `length` tokens (tokens, segments)."""
    text = length - 3
    start = rng.integers(0, len(ids) - text + 1)
    span = ids[start:start + text]
    cut = rng.integers(1, text) if text > 1 else text
    tokens = np.concatenate([[special["[CLS]"]], span[:cut], [special["[SEP]"]],
                             span[cut:], [special["[SEP]"]]])
    segments = np.zeros(length, np.int32)
    segments[cut + 2:] = 1
    return tokens, segments


def mlm_batches(ids: np.ndarray, tokenizer, seq_len: int, global_batch: int, seed: int,
                mask_rate: float = 0.15, process_index: int = 0, process_count: int = 1,
                num_batches: int = _INFINITE) -> grain.MapDataset:
    """Item i: this process's rows of global batch i (a pure function of (seed, i))."""
    if seq_len < 8:
        raise BadInput(f"data.seq_len: masked LM rows need at least 8 tokens, got {seq_len}")
    if len(ids) < seq_len:
        raise BadInput(f"data: a split has {len(ids)} tokens, fewer than data.seq_len="
                       f"{seq_len}")
    special = {name: tokenizer.id(name) for name in BERT_SPECIALS}
    rows = rows_for_process(global_batch, process_index, process_count)

    def make_batch(index, _):
        rng = np.random.default_rng((seed, index))
        lengths = rng.integers(seq_len // 2, seq_len + 1, size=global_batch)
        tokens = np.full((global_batch, seq_len), special["[PAD]"], np.int32)
        segments = np.zeros((global_batch, seq_len), np.int32)
        for r, length in enumerate(lengths):
            tokens[r, :length], segments[r, :length] = pair_row(ids, rng, length, special)
        inputs, selected = mask_tokens(rng, tokens, ~tokenizer.is_special(tokens),
                                       special["[MASK]"], tokenizer.base_vocab_size,
                                       mask_rate)
        return {"tokens": inputs[rows], "segments": segments[rows],
                "lengths": lengths[rows].astype(np.int32), "targets": tokens[rows],
                "weights": selected[rows].astype(np.float32)}

    return grain.MapDataset.range(num_batches).map_with_index(make_batch)


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    if not 0.0 < d.get("mask_rate", 0.15) < 1.0:
        raise BadInput(f"data.mask_rate must be in (0, 1), got {d.mask_rate}")
    tokenizer_path = os.path.join(workdir, TOKENIZER_FILE)
    resumed = os.path.exists(tokenizer_path)
    splits = text_files.load_splits(d.path, d.val_fraction, d.max_bytes, d.tfds_dir,
                                     d.tokenizer, resumed)
    if resumed:                                  # keep the run's own vocabulary
        tokenizer = tokenizers.load(tokenizer_path)
    else:
        tokenizer = tokenizers.build(d.tokenizer, splits["train"] + splits["validation"],
                                     BERT_SPECIALS)
    common = dict(tokenizer=tokenizer, seq_len=d.seq_len or config.model.context_length,
                  global_batch=config.batch_size, mask_rate=d.get("mask_rate", 0.15),
                  process_index=process_index, process_count=process_count)
    train = mlm_batches(tokenizer.encode(splits["train"]), seed=config.seed, **common)
    eval_ = mlm_batches(tokenizer.encode(splits["validation"]), seed=config.seed + 1_000_003,
                        num_batches=d.eval_batches, **common)
    return MaskedLMData(tokenizer, train, eval_)
