"""Tokenizes a corpus into token shards (bigmodels/data/token_shards.py) with worker
processes, one unit of documents (bigmodels/data/documents.py) per shard.

Resumable: a shard counts once its .json is written beside it, and a rerun keeps every
finished shard whose unit is the same, so a killed prepare finishes where it stopped
and writes what an uninterrupted one would have. `metadata.json` comes last.
"""

import dataclasses
import json
import multiprocessing
import os
import time

import numpy as np

from bigmodels.data import documents, token_shards, tokenizers
from bigmodels.data.token_shards import METADATA_FILE, TOKENIZER_FILE
from bigmodels.errors import BadInput

EOS = "<eos>"
# Tokenizers that learn their vocabulary from the whole corpus; prepare streams it.
LEARNED = ("char", "bpe:")


def tokenizer_for(spec: str):
    """The tokenizer of `spec` with an end-of-text token (ours, <eos>, when it has
    none): documents are separated by it."""
    if spec == "char" or spec.startswith("bpe:"):
        raise BadInput(f"--tokenizer={spec}: prepare streams the corpus and cannot learn "
                       f"a vocabulary from all of it; use byte, hf:<tokenizer> or "
                       f"sentencepiece:<model file>")
    base = tokenizers.build(spec, b"")
    if tokenizers.end_of_text_id(base) is None:
        return tokenizers.WithSpecials(base, (EOS,))
    return base


def _json_sha256(spec: dict) -> str:
    import hashlib
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Job:
    """One shard to write: `unit` (a local file part) or `docs` (streamed documents)."""
    index: int
    describe: dict
    unit: documents.Unit | None = None
    docs: tuple = ()


# ---- the worker side ----------------------------------------------------------------

_WORKER = {}


def _init_worker(tokenizer_spec: dict, out: str, text_key: str, tokenizer_hash: str):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"    # one thread a worker, not a pool each
    tokenizer = tokenizers.from_json(tokenizer_spec)
    _WORKER.update(tokenizer=tokenizer, out=out, text_key=text_key,
                   eos=tokenizers.end_of_text_id(tokenizer), hash=tokenizer_hash,
                   dtype=token_shards.id_dtype(tokenizer.vocab_size))


ENCODE_BATCH = 256       # documents a call: an HF Encoding holds ~100 bytes a token


def _encode_all(tokenizer, docs: list) -> list[np.ndarray]:
    base = getattr(tokenizer, "base", tokenizer)
    if not isinstance(base, tokenizers.HFTokenizer):
        return [np.asarray(tokenizer.encode(d), np.int64) for d in docs]
    # One call into Rust per few hundred documents (not per document, not per shard);
    # the fast variant skips the character offsets.
    encode = getattr(base.tokenizer, "encode_batch_fast", base.tokenizer.encode_batch)
    out = []
    for start in range(0, len(docs), ENCODE_BATCH):
        texts = [d.decode("utf-8", errors="replace") if isinstance(d, bytes) else d
                 for d in docs[start:start + ENCODE_BATCH]]
        out += [np.asarray(e.ids, np.int64) for e in encode(texts, add_special_tokens=False)]
    return out


def write_job(job: Job) -> tuple[int, dict]:
    """Tokenizes the job's documents (an EOS before each, but before the first document
    of shard 0 and a text part that continues a document) and writes its shard."""
    w = _WORKER
    docs = list(documents.documents(job.unit, w["text_key"])) if job.unit else list(job.docs)
    text_bytes = sum(len(d) if isinstance(d, bytes) else len(d.encode()) for d in docs)
    continues = job.unit is not None and job.unit.continues
    pieces = []
    for i, ids in enumerate(_encode_all(w["tokenizer"], docs)):
        if not (i == 0 and (job.index == 0 or continues)):
            pieces.append(np.array([w["eos"]], np.int64))
        pieces.append(ids)
    ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= w["tokenizer"].vocab_size):
        raise BadInput(f"--tokenizer: an id outside its vocabulary of "
                       f"{w['tokenizer'].vocab_size} in {job.describe}")
    name = token_shards.shard_name(job.index)
    info = token_shards.write_shard(os.path.join(w["out"], name), ids.astype(w["dtype"]))
    record = {"file": name, **info, "documents": len(docs) - int(continues and bool(docs)),
              "text_bytes": text_bytes,
              "unit": job.describe, "tokenizer_sha256": w["hash"]}
    _write_json(_record_path(w["out"], job.index), record)
    return job.index, record


def _record_path(out: str, index: int) -> str:
    return os.path.join(out, token_shards.shard_name(index)[:-len(".arrayrecord")] + ".json")


def _write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


# ---- the main process ----------------------------------------------------------------

def _finished(out: str, index: int) -> dict | None:
    path = _record_path(out, index)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _shard_intact(out: str, record: dict) -> bool:
    """The finished shard's file is there with its recorded sha256."""
    path = os.path.join(out, record["file"])
    return os.path.isfile(path) and token_shards.file_sha256(path) == record["sha256"]


def _has_tokens(out: str) -> bool:
    """Whether a finished shard in `out` holds any tokens."""
    for name in os.listdir(out):
        if name.startswith("shard-") and name.endswith(".json"):
            with open(os.path.join(out, name), encoding="utf-8") as f:
                if json.load(f)["tokens"]:
                    return True
    return False


def _hf_jobs(spec: str, text_key: str, part_bytes: int):
    """Jobs of `hf:<dataset id or dir>[:config][:split]`, read in order by `datasets`
    (streaming), cut into parts of about part_bytes of text."""
    try:
        import datasets
    except ImportError:
        raise BadInput("--input=hf:...: needs the `datasets` library "
                       "(pip install 'bigmodels[hf]')") from None
    name, config, split = (spec.split(":") + ["", ""])[:3]
    try:
        stream = datasets.load_dataset(name, config or None, split=split or "train",
                                       streaming=True)
    except Exception as e:           # offline, unknown id, bad config: one line
        raise BadInput(f"--input=hf:{spec}: {type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    docs, size, first, index, number = [], 0, 0, 0, -1
    for number, row in enumerate(stream):
        if text_key not in row:
            raise BadInput(f"--text_key={text_key}: hf:{spec} has no such column "
                           f"(columns: {', '.join(row)})")
        if row[text_key]:
            docs.append(row[text_key])
            size += len(row[text_key])
        if size >= part_bytes:
            yield Job(index, {"path": f"hf:{spec}", "start": first, "stop": number + 1},
                      docs=tuple(docs))
            docs, size, first, index = [], 0, number + 1, index + 1
    if docs:
        yield Job(index, {"path": f"hf:{spec}", "start": first, "stop": number + 1},
                  docs=tuple(docs))


def _local_jobs(paths: list[str], part_bytes: int):
    for index, unit in enumerate(documents.plan(paths, part_bytes)):
        yield Job(index, unit.describe(), unit=unit)


def _check_out(out: str, tokenizer_spec: dict) -> bool:
    """--out is new, empty or an unfinished prepare of the same tokenizer; True if this
    call made it."""
    made = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    names = os.listdir(out)
    has_shards = any(n.startswith("shard-") for n in names)
    saved = os.path.join(out, TOKENIZER_FILE)
    if has_shards and not os.path.isfile(saved):
        raise BadInput(f"--out={out} holds shards but no {TOKENIZER_FILE}; use a new --out")
    if has_shards:
        with open(saved, encoding="utf-8") as f:
            if json.load(f) != tokenizer_spec:
                raise BadInput(f"--out={out} holds shards from another tokenizer than "
                               f"this --tokenizer; prepare into a new --out")
    elif set(names) - {TOKENIZER_FILE}:
        raise BadInput(f"--out={out} is not empty and not a prepared corpus")
    _write_json(saved, tokenizer_spec)
    return made


def _run_jobs(jobs, out: str, tok_hash: str, workers: int, init: tuple, log):
    """Writes every job's shard that is not finished yet, `workers` processes at once
    (0: in this process). Returns ({index: record}, text bytes tokenized now). At most
    2 jobs a worker are in flight, so a streamed corpus is never all in memory."""
    records, text = {}, 0

    def finish(index, record):
        nonlocal text
        records[index] = record
        text += record["text_bytes"]
        log(f"{record['file']}: {record['tokens']:,} tokens")

    def todo():
        for job in jobs:
            done = _finished(out, job.index)
            if (done and done["unit"] == job.describe and done["tokenizer_sha256"] == tok_hash
                    and _shard_intact(out, done)):
                records[job.index] = done
            else:
                yield job

    if workers <= 0:
        _init_worker(*init)
        for job in todo():
            finish(*write_job(job))
        return records, text
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, init) as pool:
        in_flight = []
        for job in todo():
            in_flight.append(pool.apply_async(write_job, (job,)))
            while len(in_flight) >= 2 * workers or (in_flight and in_flight[0].ready()):
                finish(*in_flight.pop(0).get())
        for result in in_flight:
            finish(*result.get())
    return records, text


def prepare(input_spec: str, out: str, tokenizer: str, text_key: str = "text",
            workers: int = 0, val_fraction: float = 0.01, part_bytes: int = 64 << 20,
            log=print) -> dict:
    """Prepares `input_spec` into `out`; returns the metadata (also in metadata.json).
    Bad input raises BadInput and leaves no new directory behind."""
    if not 0.0 <= val_fraction < 1.0:
        raise BadInput(f"--val_fraction must be in [0, 1), got {val_fraction}")
    if os.path.isfile(os.path.join(out, METADATA_FILE)):
        meta = token_shards.read_metadata(out)
        asked = {"input": input_spec, "tokenizer": tokenizer, "text_key": text_key,
                 "val_fraction": val_fraction}
        for key, value in asked.items():
            if meta.get(key) != value:
                raise BadInput(f"--out={out} is already prepared with --{key}="
                               f"{meta.get(key)}, not {value}; prepare into a new --out")
        log(f"{out}: already prepared")
        return meta
    tok = tokenizer_for(tokenizer)
    spec = tok.to_json()
    token_shards.id_dtype(tok.vocab_size)            # refuses a vocabulary over uint32
    if input_spec.startswith("hf:"):
        jobs = _hf_jobs(input_spec[len("hf:"):], text_key, part_bytes)
    else:
        from bigmodels.data.text_files import resolve_paths
        paths = documents.corpus_files(resolve_paths(input_spec),
                                       os.path.isdir(os.path.expanduser(input_spec)))
        if not paths:
            raise BadInput(f"--input={input_spec}: no .txt, .jsonl, .parquet or .arrow "
                           f"files in it (empty input)")
        jobs = _local_jobs(paths, part_bytes)
    made = _check_out(out, spec)
    tok_hash = _json_sha256(spec)
    start = time.perf_counter()
    try:
        records, text = _run_jobs(jobs, out, tok_hash, workers,
                                  (spec, out, text_key, tok_hash), log)
        if sum(r["tokens"] for r in records.values()) == 0:
            raise BadInput(f"--input={input_spec}: no text in it (empty input)")
    except BadInput:
        if made and not _has_tokens(out):     # nothing worth resuming: leave nothing
            import shutil
            shutil.rmtree(out, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    shards = [records[i] for i in sorted(records)]
    total = sum(s["tokens"] for s in shards)
    n_train = int(total * (1.0 - val_fraction))
    meta = {"format": token_shards.FORMAT, "tokenizer": tokenizer,
            "tokenizer_sha256": tok_hash, "vocab_size": tok.vocab_size,
            "eos_id": tokenizers.end_of_text_id(tok),
            "dtype": token_shards.id_dtype(tok.vocab_size).name,
            "input": input_spec, "text_key": text_key, "val_fraction": val_fraction,
            "tokens": total, "documents": sum(s["documents"] for s in shards),
            "text_bytes": sum(s["text_bytes"] for s in shards),
            "splits": {"train": [0, n_train], "validation": [n_train, total]},
            "shards": shards,
            "last_run": {"seconds": round(seconds, 3), "workers": workers,
                         "text_bytes": text}}
    _write_json(os.path.join(out, METADATA_FILE), meta)
    return meta
