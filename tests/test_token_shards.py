"""`python -m bigmodels.prepare` and `data.kind=tokens`: shards that hold exactly the
in-memory path's tokens and give its batches, resume after a kill, and refuse bad
input with one line."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bigmodels import data
from bigmodels.data import prepare_shards, token_shards, tokenizers
from bigmodels.errors import BadInput
from conftest import ROOT
from helpers import tiny_lm_config

WORDS = "the quick brown fox jumps over a lazy dog while seven owls sing softly at night"


def _text(lines: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = WORDS.split()
    return "\n".join(" ".join(rng.choice(words, 10)) for _ in range(lines)) + "\n"


def _snapshot(directory) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(pathlib.Path(directory).iterdir()) if p.name != "metadata.json"}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bigmodels.prepare", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _lm_config(path, kind, sampling="random"):
    c = tiny_lm_config(str(path))
    c.data.kind, c.data.tokenizer, c.data.sampling, c.data.val_fraction = \
        kind, "byte", sampling, 0.1
    return c


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_prepared_shards_give_the_in_memory_tokens_and_batches(tmp_path, monkeypatch,
                                                               sampling):
    monkeypatch.setenv("BIGMODELS_DATA_DIR", str(tmp_path / "tfds"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_text(400))
    out = tmp_path / "prepared"
    # Parts of ~1 KB: a score of shards, so windows cross shard and record ends.
    meta = prepare_shards.prepare(str(corpus), str(out), "byte", val_fraction=0.1,
                                  part_bytes=1024, log=lambda _: None)
    assert len(meta["shards"]) > 10 and meta["dtype"] == "uint16"
    in_memory = data.build(_lm_config(corpus, "text", sampling), str(tmp_path / "w1"))
    streamed = data.build(_lm_config(out, "tokens", sampling), str(tmp_path / "w2"))
    _, splits = token_shards.open_splits(str(out))
    raw = np.frombuffer(corpus.read_bytes(), np.uint8).astype(np.int32)
    cut = int(len(raw) * 0.9)
    np.testing.assert_array_equal(splits["train"][:], raw[:cut])
    np.testing.assert_array_equal(splits["validation"][:], raw[cut:])
    assert (streamed.train_tokens, streamed.eval_tokens) == (in_memory.train_tokens,
                                                            in_memory.eval_tokens)
    for i in (0, 1, 7, 123):
        np.testing.assert_array_equal(streamed.train[i]["tokens"], in_memory.train[i]["tokens"])
    for i in range(len(in_memory.eval)):
        np.testing.assert_array_equal(streamed.eval[i]["tokens"], in_memory.eval[i]["tokens"])


def test_stream_reads_any_slice_across_records_and_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(token_shards, "RECORD_TOKENS", 7)
    ids = np.arange(1000) % 250
    meta_shards, start = [], 0
    for i, n in enumerate([100, 3, 0, 400, 497]):
        name = token_shards.shard_name(i)
        info = token_shards.write_shard(str(tmp_path / name), ids[start:start + n]
                                        .astype(np.uint16))
        meta_shards.append({"file": name, **info})
        start += n
    stream = token_shards.TokenStream(str(tmp_path), meta_shards, np.uint16)
    rng = np.random.default_rng(0)
    for a, b in [(0, 1000), (99, 104), (102, 504), (999, 1000), (5, 5)] + \
            [tuple(sorted(rng.integers(0, 1001, 2))) for _ in range(50)]:
        np.testing.assert_array_equal(stream[a:b], ids[a:b])
    part = token_shards.TokenStream(str(tmp_path), meta_shards, np.uint16, 103, 600)
    assert len(part) == 497
    np.testing.assert_array_equal(part[10:20], ids[113:123])


def test_documents_are_separated_by_eos_and_jsonl_parquet_agree(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    texts = ["first doc", "", "second, longer document", "third"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    pq.write_table(pa.table({"text": texts, "n": list(range(4))}), tmp_path / "d.parquet",
                   row_group_size=2)
    metas = {}
    for name in ("d.jsonl", "d.parquet"):
        out = tmp_path / (name + ".out")
        metas[name] = prepare_shards.prepare(str(tmp_path / name), str(out), "byte",
                                             val_fraction=0.0, log=lambda _: None)
        _, splits = token_shards.open_splits(str(out))
        tok = tokenizers.load(str(out / "tokenizer.json"))
        eos = tokenizers.end_of_text_id(tok)
        assert eos == 256 and tok.vocab_size == 257           # byte + <eos>
        expected = [list(b"first doc"), [eos], list(b"second, longer document"), [eos],
                    list(b"third")]
        np.testing.assert_array_equal(splits["train"][:], np.concatenate(expected))
    assert metas["d.parquet"]["documents"] == metas["d.jsonl"]["documents"] == 3
    assert len(metas["d.parquet"]["shards"]) == 2             # one per row group


def test_hf_input_reads_a_local_dataset_through_datasets(tmp_path):
    pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    folder = tmp_path / "ds"
    folder.mkdir()
    texts = [f"document number {i}" for i in range(20)]
    pq.write_table(pa.table({"content": texts}), folder / "train.parquet")
    local = prepare_shards.prepare(str(folder / "train.parquet"), str(tmp_path / "a"), "byte",
                                   text_key="content", val_fraction=0.0, log=lambda _: None)
    hub = prepare_shards.prepare(f"hf:{folder}", str(tmp_path / "b"), "byte",
                                 text_key="content", val_fraction=0.0, part_bytes=64,
                                 log=lambda _: None)
    assert len(hub["shards"]) > 1 and hub["tokens"] == local["tokens"]
    a = token_shards.open_splits(str(tmp_path / "a"))[1]["train"][:]
    b = token_shards.open_splits(str(tmp_path / "b"))[1]["train"][:]
    np.testing.assert_array_equal(a, b)


def _bpe(tmp_path) -> str:
    """A small byte-level BPE's tokenizer.json (slower to encode than bytes)."""
    path = tmp_path / "bpe.json"
    tokenizers.train_bpe(_text(300).encode(), 400).tokenizer.save(str(path))
    return str(path)


def test_a_killed_prepare_resumes_to_the_same_output(tmp_path):
    corpus = tmp_path / "big.txt"
    corpus.write_text(_text(60_000, seed=1))               # ~3.7 MB: 30 parts of 128 KB
    tok = f"hf:{_bpe(tmp_path)}"
    args = [f"--input={corpus}", f"--tokenizer={tok}", "--workers=2", "--part_mb=0.125"]
    whole = tmp_path / "whole"
    prepare_shards.prepare(str(corpus), str(whole), tok, workers=0, part_bytes=1 << 17,
                           log=lambda _: None)
    parts = len(json.loads((whole / "metadata.json").read_text())["shards"])
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bigmodels.prepare", *args,
                             f"--out={killed}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(killed.glob("shard-*.json")):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)                     # the workers too
    proc.wait()
    finished = len(list(killed.glob("shard-*.json")))
    assert 0 < finished < parts and not (killed / "metadata.json").exists()
    resumed = _cli(*args, f"--out={killed}")
    assert resumed.returncode == 0, resumed.stderr
    written = resumed.stdout.count(" tokens\n")
    assert written == parts - finished                     # the finished ones were kept
    assert _snapshot(killed) == _snapshot(whole)
    meta_a = json.loads((whole / "metadata.json").read_text())
    meta_b = json.loads((killed / "metadata.json").read_text())
    meta_a.pop("last_run"), meta_b.pop("last_run")
    assert meta_a == meta_b


# ---- bad input: one line, exit 2, nothing written -----------------------------------

def _one_line_exit_2(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_prepare_inputs_exit_2_and_write_nothing(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "no_text.parquet")
    (tmp_path / "empty.jsonl").write_text(json.dumps({"text": ""}) + "\n")
    (tmp_path / "empty.txt").write_text("")
    cases = {
        "parquet": ([f"--input={tmp_path / 'no_text.parquet'}"], ("--text_key=text", "body")),
        "empty jsonl": ([f"--input={tmp_path / 'empty.jsonl'}"], ("empty input",)),
        "empty txt": ([f"--input={tmp_path / 'empty.txt'}"], ("empty",)),
        "char": ([f"--input={tmp_path / 'empty.jsonl'}", "--tokenizer=char"], ("--tokenizer",)),
    }
    for name, (args, words) in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        _one_line_exit_2(_cli(*args, f"--out={out}", "--workers=2"), *words)
        assert not out.exists(), name


def test_vocabulary_beyond_uint32_is_refused():
    assert token_shards.id_dtype(256) == np.uint16
    assert token_shards.id_dtype(65_536) == np.uint16
    assert token_shards.id_dtype(65_537) == np.uint32
    with pytest.raises(BadInput, match="does not fit in uint32"):
        token_shards.id_dtype(2**32 + 1)


@pytest.fixture
def prepared(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(_text(300))
    out = tmp_path / "prepared"
    prepare_shards.prepare(str(corpus), str(out), "byte", val_fraction=0.1, part_bytes=4096,
                           log=lambda _: None)
    return out


def test_a_corrupt_shard_is_refused_by_name(prepared, tmp_path):
    shard = prepared / token_shards.shard_name(2)
    raw = bytearray(shard.read_bytes())
    raw[-40] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(BadInput, match=f"{shard.name}: sha256 does not match"):
        data.build(_lm_config(prepared, "tokens"), str(tmp_path / "w"))


def test_shards_from_two_tokenizers_are_refused(prepared, tmp_path):
    meta = json.loads((prepared / "metadata.json").read_text())
    meta["shards"][3]["tokenizer_sha256"] = "0" * 64
    (prepared / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BadInput, match="two tokenizers"):
        data.build(_lm_config(prepared, "tokens"), str(tmp_path / "w"))
    # Resuming into an unfinished directory with another tokenizer is refused too.
    (prepared / "metadata.json").unlink()
    before = _snapshot(prepared)
    result = _cli(f"--input={prepared.parent / 'c.txt'}", f"--out={prepared}",
                  f"--tokenizer=hf:{_bpe(tmp_path)}")
    _one_line_exit_2(result, "another tokenizer")
    assert _snapshot(prepared) == before


def test_processes_read_disjoint_rows_of_the_same_batches(prepared, tmp_path):
    config = _lm_config(prepared, "tokens")
    whole = data.build(config, str(tmp_path / "w"))
    halves = [data.build(config, str(tmp_path / f"w{p}"), process_index=p, process_count=2)
              for p in range(2)]
    for i in (0, 5):
        np.testing.assert_array_equal(
            np.concatenate([h.train[i]["tokens"] for h in halves]), whole.train[i]["tokens"])
        assert halves[0].train[i]["tokens"].shape[0] == config.batch_size // 2


def test_a_run_trains_on_prepared_tokens_and_keeps_their_tokenizer(prepared, tmp_path):
    from bigmodels import train
    from helpers import read_metrics
    config = _lm_config(prepared, "tokens")
    config.total_steps = 3
    workdir = tmp_path / "run"
    train.run(config, str(workdir))
    losses = read_metrics(str(workdir))
    assert sorted(losses) == [1, 2, 3] and all(np.isfinite(v) for v in losses.values())
    saved = json.loads((workdir / "tokenizer.json").read_text())
    assert saved == json.loads((prepared / "tokenizer.json").read_text())
    assert json.loads((workdir / "config.json").read_text())["model"]["vocab_size"] == 257


def test_gpt2_fineweb_variant_trains_on_a_prepared_parquet(tmp_path):
    """experiments/gpt2_124m.py:fineweb end to end, shrunk: a local parquet folder read
    through `hf:` (the `datasets` path FineWeb takes), a GPT-2-style byte-level BPE with
    <|endoftext|> standing in for hf:gpt2 (offline), then a few steps of the variant."""
    pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from bigmodels import train
    from helpers import experiment_config, read_metrics
    folder = tmp_path / "fineweb"
    folder.mkdir()
    docs = [_text(20, seed=s) for s in range(40)]
    pq.write_table(pa.table({"text": docs, "id": [str(i) for i in range(40)]}),
                   folder / "train-00000.parquet", row_group_size=10)
    bpe = tokenizers.train_bpe("".join(docs).encode(), 300).tokenizer
    bpe.add_special_tokens(["<|endoftext|>"])
    bpe.save(str(tmp_path / "gpt2-like.json"))
    out = tmp_path / "prepared"
    meta = prepare_shards.prepare(f"hf:{folder}", str(out), f"hf:{tmp_path / 'gpt2-like.json'}",
                                  workers=2, val_fraction=0.1, part_bytes=4096,
                                  log=lambda _: None)
    assert meta["eos_id"] == 300 and meta["vocab_size"] == 301     # its own EOS, none added
    assert meta["documents"] == 40 and len(meta["shards"]) > 2
    config = experiment_config("gpt2_124m", "fineweb")
    assert (config.data.kind, config.batch_size, config.total_steps) == ("tokens", 512, 19_073)
    config.data.path = str(out)
    config.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32,
                        dtype="float32", attention_impl="xla")
    config.update(total_steps=2, batch_size=8, log_every=1, eval_every=2, ckpt_every=2)
    config.data.eval_batches = 1
    config.optim.warmup_steps = 1
    train.run(config, str(tmp_path / "run"))
    assert sorted(read_metrics(str(tmp_path / "run"))) == [1, 2]


def test_segmented_packing_trains_and_a_recurrent_lm_is_refused(tmp_path):
    from bigmodels import train
    from bigmodels.models.rnn import rnn_config
    from helpers import read_metrics
    words = WORDS.split()
    texts = [" ".join(words[s % 7:s % 7 + 2]) for s in range(400)]     # ~9 bytes each
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "prepared"
    prepare_shards.prepare(str(tmp_path / "docs.jsonl"), str(out), "byte", val_fraction=0.1,
                           log=lambda _: None)
    config = _lm_config(out, "tokens")
    config.data.packing = "segmented"
    batch = data.build(config, str(tmp_path / "w")).train[0]
    assert batch["segments"].shape == batch["tokens"].shape
    assert (batch["positions"][batch["tokens"] == 256] == 0).all()    # <eos> starts one
    assert batch["segments"].max() > 0
    config.total_steps = 2
    train.run(config, str(tmp_path / "run"))
    assert sorted(read_metrics(str(tmp_path / "run"))) == [1, 2]
    config.model = rnn_config(vocab_size=0, embed_dim=16, hidden_dim=16, context_length=16)
    with pytest.raises(BadInput, match="data.packing=segmented"):
        train.run(config, str(tmp_path / "lstm"))


def test_resume_redoes_changed_or_damaged_shards_and_refuses_other_arguments(prepared, tmp_path):
    whole = _snapshot(prepared)
    corpus = str(prepared.parent / "c.txt")
    (prepared / "metadata.json").unlink()
    shard = prepared / token_shards.shard_name(1)
    shard.write_bytes(shard.read_bytes()[:-10])               # damaged before the kill
    prepare_shards.prepare(corpus, str(prepared), "byte", val_fraction=0.1, part_bytes=4096,
                           log=lambda _: None)
    assert _snapshot(prepared) == whole
    with pytest.raises(BadInput, match="already prepared with --val_fraction=0.1"):
        prepare_shards.prepare(corpus, str(prepared), "byte", val_fraction=0.2,
                               log=lambda _: None)
    tok = json.loads((prepared / "tokenizer.json").read_text())
    tok["specials"] = ["<eos>", "<pad>"]
    (prepared / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(BadInput, match="not the tokenizer the shards were written with"):
        data.build(_lm_config(prepared, "tokens"), str(tmp_path / "w"))


def test_a_directory_gives_its_corpus_files_only_and_odd_unicode_is_kept(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "bad \\ud800 surrogate"}\n{"text": "fine"}\n')
    (folder / "dataset_info.json").write_text('{"not": "a document"}')
    (folder / "LICENSE").write_text("not a document either")
    (folder / "empty.txt").write_text("")
    meta = prepare_shards.prepare(str(folder), str(tmp_path / "out"), "byte",
                                  val_fraction=0.0, log=lambda _: None)
    assert meta["documents"] == 2
    _, splits = token_shards.open_splits(str(tmp_path / "out"))
    text = bytes(splits["train"][:][splits["train"][:] < 256].astype(np.uint8)).decode()
    assert text == "bad \ufffd surrogatefine"


def test_a_stream_keeps_a_bounded_number_of_shards_open(prepared, monkeypatch):
    monkeypatch.setattr(token_shards, "OPEN_READERS", 2)
    meta, splits = token_shards.open_splits(str(prepared))
    stream = splits["train"]
    ids = stream[:]
    for a in range(0, len(stream) - 50, 997):
        np.testing.assert_array_equal(stream[a:a + 50], ids[a:a + 50])
        assert len(stream._readers) <= 2
