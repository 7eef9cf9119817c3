"""Batches of (log-mel features, transcript) pairs for CTC speech recognition.

Every speech data kind (synthetic_speech, tfds_speech) ends here with a list of utterances per
split. A batch holds

    features         B x max_frames x num_mels float32 (per-utterance normalised, zero-padded)
    feature_lengths  B int32
    labels           B x max_label_len int32 character ids (padded with the space id)
    label_lengths    B int32

Training batch i draws distinct utterances at random from (seed, i), so it is a pure
function of them; eval batches are the held-out utterances in order. Each process keeps
its own rows of every global batch.

The character tokenizer always contains the space and has one special, "<blank>", after
the characters. Since the characters are sorted and transcripts hold no control
characters, the space is id 0 and the blank the last id: the ctc task relies on both.
"""

import dataclasses
import os

import grain
import numpy as np

from bigmodels.data import log_mel, tokenizers
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import SPEECH_SPACE_ID as SPACE_ID
from bigmodels.names import TOKENIZER_FILE

BLANK = "<blank>"
_INFINITE = 2**62


@dataclasses.dataclass
class SpeechData:
    tokenizer: object
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset of the held-out batches

    def save(self, workdir: str) -> None:
        tokenizers.save(self.tokenizer, os.path.join(workdir, TOKENIZER_FILE))


def normalize_text(text: str) -> str:
    """Lower case, single spaces, no control characters (so the space sorts first)."""
    words = ("".join(c for c in word if c.isprintable()) for word in text.lower().split())
    return " ".join(w for w in words if w)


def speech_tokenizer(texts, workdir: str = ""):
    """Characters of `texts` plus the space, then "<blank>"; a resumed run keeps its own."""
    path = os.path.join(workdir, TOKENIZER_FILE) if workdir else ""
    if path and os.path.exists(path):
        tokenizer = tokenizers.load(path)
    else:
        corpus = (" " + "".join(texts)).encode("utf-8")
        tokenizer = tokenizers.build("char", corpus, specials=(BLANK,))
    if (not hasattr(tokenizer, "id") or tokenizer.id(BLANK) != tokenizer.vocab_size - 1
            or tokenizer.encode(" ").tolist() != [SPACE_ID]):
        raise BadInput(f"tokenizer: speech needs the space as id {SPACE_ID} and {BLANK} as "
                       f"the last id ({path or 'built from the transcripts'})")
    return tokenizer


@dataclasses.dataclass
class Utterances:
    """One split, ragged: features[k] is frames x num_mels (any float dtype)."""
    features: list
    labels: list           # int32 arrays of character ids

    def __len__(self):
        return len(self.labels)


def encode(features: list, texts: list, tokenizer, max_frames: int, max_label_len: int,
           split: str) -> Utterances:
    """Drops (and reports) utterances that do not fit the fixed batch shapes."""
    kept_f, kept_l = [], []
    for f, text in zip(features, texts):
        ids = tokenizer.encode(text)
        if len(f) <= max_frames and 0 < len(ids) <= max_label_len:
            kept_f.append(f)
            kept_l.append(ids.astype(np.int32))
    dropped = len(texts) - len(kept_l)
    if dropped:
        print(f"data: dropped {dropped} of {len(texts)} {split} utterances longer than "
              f"data.max_frames={max_frames} or data.max_label_len={max_label_len}",
              flush=True)
    if not kept_l:
        raise BadInput(f"data: no {split} utterance fits data.max_frames={max_frames} and "
                       f"data.max_label_len={max_label_len}")
    return Utterances(kept_f, kept_l)


def pad_batch(utterances: Utterances, indices, max_frames: int, max_label_len: int) -> dict:
    num_mels = utterances.features[0].shape[1]
    batch = {"features": np.zeros((len(indices), max_frames, num_mels), np.float32),
             "feature_lengths": np.zeros(len(indices), np.int32),
             "labels": np.full((len(indices), max_label_len), SPACE_ID, np.int32),
             "label_lengths": np.zeros(len(indices), np.int32)}
    for row, k in enumerate(indices):
        f, ids = utterances.features[k], utterances.labels[k]
        batch["features"][row, :len(f)] = log_mel.normalize(f)
        batch["feature_lengths"][row] = len(f)
        batch["labels"][row, :len(ids)] = ids
        batch["label_lengths"][row] = len(ids)
    return batch


def train_batches(utterances: Utterances, global_batch: int, seed: int, max_frames: int,
                  max_label_len: int, process_index: int = 0,
                  process_count: int = 1) -> grain.MapDataset:
    if len(utterances) < global_batch:
        raise BadInput(f"data: {len(utterances)} training utterances cannot fill a batch of "
                       f"{global_batch}")
    rows = rows_for_process(global_batch, process_index, process_count)

    def make_batch(index, _):
        chosen = np.random.default_rng((seed, index)).choice(len(utterances), global_batch,
                                                             replace=False)
        return pad_batch(utterances, chosen[rows], max_frames, max_label_len)

    return grain.MapDataset.range(_INFINITE).map_with_index(make_batch)


def eval_batches(utterances: Utterances, global_batch: int, num_batches: int,
                 max_frames: int, max_label_len: int, process_index: int = 0,
                 process_count: int = 1) -> grain.MapDataset:
    """The first num_batches full batches of the split, in order (the rest is unused)."""
    num_batches = min(num_batches, len(utterances) // global_batch)
    if num_batches < 1:
        raise BadInput(f"data: {len(utterances)} eval utterances cannot fill a batch of "
                       f"{global_batch}")
    rows = rows_for_process(global_batch, process_index, process_count)

    def make_batch(index, _):
        chosen = np.arange(index * global_batch, (index + 1) * global_batch)
        return pad_batch(utterances, chosen[rows], max_frames, max_label_len)

    return grain.MapDataset.range(num_batches).map_with_index(make_batch)


def build_data(config, workdir: str, train_split: tuple, eval_split: tuple,
               process_index: int = 0, process_count: int = 1) -> SpeechData:
    """(features list, transcripts list) per split -> SpeechData with fixed batch shapes."""
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    train_texts = [normalize_text(t) for t in train_split[1]]
    eval_texts = [normalize_text(t) for t in eval_split[1]]
    tokenizer = speech_tokenizer(train_texts + eval_texts, workdir)
    shapes = dict(max_frames=d.max_frames, max_label_len=d.max_label_len)
    common = dict(global_batch=config.batch_size, process_index=process_index,
                  process_count=process_count, **shapes)
    train = encode(train_split[0], train_texts, tokenizer, split="train", **shapes)
    eval_ = encode(eval_split[0], eval_texts, tokenizer, split="eval", **shapes)
    return SpeechData(tokenizer, train_batches(train, seed=config.seed, **common),
                      eval_batches(eval_, num_batches=d.eval_batches, **common))
