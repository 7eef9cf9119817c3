"""Offline transduction tasks for sequence-to-sequence models, and the batch format.

    number_words:  "twelve thousand three hundred and seven" -> "12307"
    reverse:       "kqzfa" -> "afzqk"

Examples are generated, never stored. Which examples are held out is decided by a
hash of the source text (`data.val_fraction` of all possible sources), so no eval
example is ever trained on, on any seed or number of processes. Batch i is a pure
function of (seed, i), and each process builds only its own rows.

A batch: `inputs` (B x S: the source + <eos>, padded with <pad>), `input_lengths`,
`targets` (B x T: the target + <eos>, padded) and `target_lengths` (with the <eos>).
"""

import dataclasses
import hashlib
import os

import grain
import numpy as np

from bigmodels.data import tokenizers
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import SEQ2SEQ_SPECIALS as SPECIALS
from bigmodels.names import TOKENIZER_FILE

_INFINITE = 2**62
ALPHABET = " 0123456789abcdefghijklmnopqrstuvwxyz"

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


@dataclasses.dataclass
class Seq2SeqData:
    tokenizer: object
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset of the fixed held-out batches

    def save(self, workdir: str) -> None:
        tokenizers.save(self.tokenizer, os.path.join(workdir, TOKENIZER_FILE))


def number_words(n: int) -> str:
    """0 <= n < 10**6 in British English words: 'three hundred and seven'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        head, rest = _ONES[n // 100] + " hundred", n % 100
        return head + (" and " + number_words(rest) if rest else "")
    if n < 10**6:
        head, rest = number_words(n // 1000) + " thousand", n % 1000
        if not rest:
            return head
        return head + (" and " if rest < 100 else " ") + number_words(rest)
    raise ValueError(f"{n} is not below a million")


def _longest_number_words(max_digits: int) -> int:
    below_1000 = [len(number_words(n)) for n in range(min(10**max_digits, 1000))]
    if max_digits <= 3:
        return max(below_1000)
    # A thousands part and the rest are written independently, so their longest add up.
    thousands = max(below_1000[1:10**(max_digits - 3)])
    rest = max(len(number_words(1000 + r)) - len("one thousand") for r in range(1, 1000))
    return thousands + len(" thousand") + rest


def _sample_number_words(rng, max_digits: int):
    digits = rng.integers(1, max_digits + 1)
    low = 0 if digits == 1 else 10**(digits - 1)
    n = int(rng.integers(low, 10**digits))
    return number_words(n), str(n)


def _sample_reverse(rng, max_chars: int):
    letters = rng.integers(0, 26, size=rng.integers(1, max_chars + 1))
    text = "".join(chr(ord("a") + c) for c in letters)
    return text, text[::-1]


# name -> (sampler(rng, size) -> (source, target), longest source, longest target)
TRANSDUCTIONS = {
    "number_words": (_sample_number_words, _longest_number_words, lambda size: size),
    "reverse": (_sample_reverse, lambda size: size, lambda size: size),
}


def is_heldout(source: str, fraction: float) -> bool:
    """A fixed pseudo-random `fraction` of all sources, decided by a hash of the text."""
    digest = hashlib.blake2b(source.encode(), digest_size=8).digest()
    # Compared in hundredths of a percent, as when the key was data.heldout_percent: the
    # rounding recovers the percent exactly (to 10 decimals), so the split is unchanged.
    percent = round(fraction * 100, 10)
    return int.from_bytes(digest, "little") % 10_000 < percent * 100


def pack(pairs, tokenizer, source_len: int, target_len: int, truncate: bool = False):
    """(source, target) texts -> a batch, each side ending with <eos>.

    Too long a side is cut to fit (keeping its <eos>) if `truncate`, else refused."""
    pad, eos = tokenizer.id("<pad>"), tokenizer.id("<eos>")
    out = {"inputs": np.full((len(pairs), source_len), pad, np.int32),
           "input_lengths": np.zeros(len(pairs), np.int32),
           "targets": np.full((len(pairs), target_len), pad, np.int32),
           "target_lengths": np.zeros(len(pairs), np.int32)}
    for r, pair in enumerate(pairs):
        for text, side, length in zip(pair, ("input", "target"), (source_len, target_len)):
            ids = tokenizer.encode(text)
            if len(ids) + 1 > length:
                if not truncate:
                    raise BadInput(f"data: {text[:40]!r} needs {len(ids) + 1} tokens, more "
                                   f"than data.{'source' if side == 'input' else side}_len="
                                   f"{length}")
                ids = ids[:length - 1]
            out[side + "s"][r, :len(ids)] = ids
            out[side + "s"][r, len(ids)] = eos
            out[side + "_lengths"][r] = len(ids) + 1
    return out


def transduction_batches(task: str, size: int, tokenizer, source_len: int, target_len: int,
                         global_batch: int, seed: int, heldout: bool, val_fraction: float,
                         process_index: int = 0, process_count: int = 1,
                         num_batches: int = _INFINITE) -> grain.MapDataset:
    """Item i: this process's rows of global batch i, drawn from the train examples
    or (heldout=True) only from the held-out ones."""
    sample = TRANSDUCTIONS[task][0]
    rows = rows_for_process(global_batch, process_index, process_count)

    def make_batch(index, _):
        pairs = []
        for row in range(global_batch)[rows]:
            # One generator per row: a process draws its rows without drawing the others'.
            rng = np.random.default_rng((seed, index, row))
            while True:      # rejection sampling; each side keeps a fixed share of sources
                pair = sample(rng, size)
                if is_heldout(pair[0], val_fraction) == heldout:
                    break
            pairs.append(pair)
        return pack(pairs, tokenizer, source_len, target_len)

    return grain.MapDataset.range(num_batches).map_with_index(make_batch)


def build(config, workdir: str, process_index: int = 0, process_count: int = 1) -> Seq2SeqData:
    d = config.data
    task, size = d.get("transduction", "number_words"), d.get("size", 6)
    if task not in TRANSDUCTIONS:
        raise BadInput(f"data.transduction: unknown task {task!r} "
                       f"(known: {', '.join(TRANSDUCTIONS)})")
    if task == "number_words" and not 1 <= size <= 6:
        raise BadInput(f"data.size: number_words takes 1 to 6 digits, got {size}")
    if size < 1:
        raise BadInput(f"data.size must be positive, got {size}")
    val_fraction = d.get("val_fraction", 0.1)
    if not 0 < val_fraction < 1:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    _, longest_source, longest_target = TRANSDUCTIONS[task]
    for key, need in (("source_len", longest_source(size) + 1),
                      ("target_len", longest_target(size) + 1)):
        if d.get(key, 0) < need:
            raise BadInput(f"data.{key}={d.get(key, 0)} is too short: {task} with size={size} "
                           f"needs {need} (the longest text + <eos>)")
    tokenizer_path = os.path.join(workdir, TOKENIZER_FILE)
    if os.path.exists(tokenizer_path):           # resume: keep the run's own vocabulary
        tokenizer = tokenizers.load(tokenizer_path)
    else:
        tokenizer = tokenizers.build(d.tokenizer, ALPHABET.encode(), specials=SPECIALS)
    common = dict(task=task, size=size, tokenizer=tokenizer, source_len=d.source_len,
                  target_len=d.target_len, global_batch=config.batch_size,
                  val_fraction=val_fraction, process_index=process_index,
                  process_count=process_count)
    train = transduction_batches(seed=config.seed, heldout=False, **common)
    eval_ = transduction_batches(seed=config.seed + 1_000_003, heldout=True,
                                 num_batches=d.eval_batches, **common)
    return Seq2SeqData(tokenizer, train, eval_)
