"""Token shards: a corpus tokenized once (`python -m bigmodels.prepare`) into
array_record files of token ids, read back by random access without loading them.

A prepared directory holds:

    metadata.json               the tokenizer's spec and hash, the id dtype, every
                                shard's token count and sha256, and the splits
    tokenizer.json              the tokenizer, as a run saves it
    shard-00000.arrayrecord     one unit of the input: its documents' ids, an EOS before
    shard-00000.json            every document but the stream's first; records of
                                RECORD_TOKENS ids (the last shorter), uint16 when the
                                vocabulary fits, else uint32. The .json beside a shard
                                is written after it: the shard is finished.

The shards in order are one token stream, and a split is a range of it: train is the
first (1 - val_fraction) of the tokens, validation the rest (nanoGPT's split, in tokens).
"""

import concurrent.futures
import hashlib
import json
import os

import numpy as np

from bigmodels.errors import BadInput

METADATA_FILE = "metadata.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "bigmodels.token_shards/1"
RECORD_TOKENS = 1 << 14          # 32 KB of uint16 a record: a window reads one or two
OPEN_READERS = 128               # shards a stream keeps open (a corpus may have thousands)
# One record per group and no compression: any record is one read, in place.
WRITER_OPTIONS = "group_size:1,uncompressed"
READER_OPTIONS = "readahead_buffer_size:0"


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id of the vocabulary."""
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise BadInput(f"tokenizer: a vocabulary of {vocab_size} ids does not fit in uint32")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.arrayrecord"


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_shard(path: str, ids: np.ndarray) -> dict:
    """Writes `ids` (already in the id dtype) as records of RECORD_TOKENS, atomically;
    returns its token count and sha256."""
    from array_record.python.array_record_module import ArrayRecordWriter
    tmp = path + ".tmp"
    writer = ArrayRecordWriter(tmp, WRITER_OPTIONS)
    for start in range(0, len(ids), RECORD_TOKENS):
        writer.write(ids[start:start + RECORD_TOKENS].tobytes())
    writer.close()
    os.replace(tmp, path)
    return {"tokens": int(len(ids)), "sha256": file_sha256(path)}


class TokenStream:
    """Tokens [start, stop) of the shards' stream as a read-only sequence: `len()` and
    slices `stream[a:b]` (ids as int32), read from the records they cover. Readers
    open on first use, in each process."""

    def __init__(self, directory: str, shards: list[dict], dtype: np.dtype,
                 start: int = 0, stop: int | None = None):
        self.directory, self.dtype = directory, np.dtype(dtype)
        self._paths = [os.path.join(directory, s["file"]) for s in shards]
        counts = np.array([s["tokens"] for s in shards], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])   # stream offset of each
        self.start = start
        self.stop = int(self._starts[-1]) if stop is None else stop
        self._readers = {}

    def __len__(self) -> int:
        return self.stop - self.start

    def __getstate__(self):                 # readers stay in the process that opened them
        return {**self.__dict__, "_readers": {}}

    def _reader(self, shard: int):
        reader = self._readers.pop(shard, None)
        if reader is None:
            from array_record.python.array_record_module import ArrayRecordReader
            reader = ArrayRecordReader(self._paths[shard], READER_OPTIONS)
            if len(self._readers) >= OPEN_READERS:         # close the least recently used
                self._readers.pop(next(iter(self._readers))).close()
        self._readers[shard] = reader                      # most recent last
        return reader

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a TokenStream reads contiguous slices only")
        a, b, _ = key.indices(len(self))
        return self.read(self.start + a, self.start + max(a, b))

    def read(self, a: int, b: int) -> np.ndarray:
        """Stream tokens [a, b) as int32."""
        pieces = []
        shard = int(np.searchsorted(self._starts, a, side="right")) - 1
        while a < b:
            local = a - int(self._starts[shard])
            end = min(b, int(self._starts[shard + 1]))
            if end <= a:                         # an empty shard
                shard += 1
                continue
            first, last = local // RECORD_TOKENS, (end - 1 - int(self._starts[shard])) \
                // RECORD_TOKENS
            records = self._reader(shard).read(list(range(first, last + 1)))
            ids = np.frombuffer(b"".join(records), self.dtype)
            offset = local - first * RECORD_TOKENS
            pieces.append(ids[offset:offset + end - a])
            a, shard = end, shard + 1
        return np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)


def read_metadata(directory: str) -> dict:
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        raise BadInput(f"data.path={directory}: no {METADATA_FILE} (not a directory "
                       f"written by python -m bigmodels.prepare, or one still running)")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: unreadable ({e})") from None
    if meta.get("format") != FORMAT:
        raise BadInput(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def verify(directory: str, meta: dict, workers: int = 4) -> None:
    """tokenizer.json is the one the shards were written with, one tokenizer wrote
    them all, and every shard is there with its sha256 as recorded; BadInput names the
    first that is not."""
    if not meta["shards"]:
        raise BadInput(f"data.path={directory}: {METADATA_FILE} lists no shards")
    tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
    try:
        with open(tokenizer_path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"data.path: {tokenizer_path}: unreadable ({e})") from None
    spec_hash = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    if spec_hash != meta["tokenizer_sha256"]:
        raise BadInput(f"data.path: {tokenizer_path} is not the tokenizer the shards were "
                       f"written with (changed after prepare)")
    hashes = {s.get("tokenizer_sha256") for s in meta["shards"]}
    if hashes != {meta["tokenizer_sha256"]}:
        odd = next(s for s in meta["shards"]
                   if s.get("tokenizer_sha256") != meta["tokenizer_sha256"])
        raise BadInput(f"{os.path.join(directory, odd['file'])}: written with another "
                       f"tokenizer than {TOKENIZER_FILE} (shards from two tokenizers); "
                       f"prepare the corpus again into a new --out")

    def check(shard):
        path = os.path.join(directory, shard["file"])
        if not os.path.isfile(path):
            return f"{path}: missing"
        # Hashing releases the GIL: threads read several shards at once.
        if file_sha256(path) != shard["sha256"]:
            return f"{path}: sha256 does not match {METADATA_FILE} (corrupt or changed)"
        return None

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for problem in pool.map(check, meta["shards"]):
            if problem:
                raise BadInput(f"data.path: shard {problem}")


def open_splits(directory: str, check: bool = True):
    """(metadata, {split: TokenStream}) of a prepared directory."""
    meta = read_metadata(directory)
    if check:
        verify(directory, meta)
    dtype = np.dtype(meta["dtype"])
    streams = {name: TokenStream(directory, meta["shards"], dtype, *span)
               for name, span in meta["splits"].items()}
    return meta, streams
