"""Text data: TFDS split without TensorFlow, tokenizers, deterministic grain windows."""

import numpy as np
import pytest

from bigmodels.data import text_files, tokenizers
from bigmodels.data.windows import window_batches
from bigmodels.errors import BadInput
from helpers import assert_runs_without_tensorflow


def test_tensorflow_is_not_imported(corpus, tmp_path):
    assert_runs_without_tensorflow(f"""
from bigmodels.data import text_files
text_files.load_splits({corpus!r}, 0.1, data_dir={str(tmp_path)!r})
""")


def test_split_is_first_90_and_last_10_percent(tmp_path):
    data = bytes(range(256)) * 40 + "é ünïcode".encode() * 50
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    splits = text_files.load_splits(str(path), 0.1)
    cut = int(len(data) * 0.9)
    assert splits["train"] == data[:cut] and splits["validation"] == data[cut:]


def test_glob_of_many_files_keeps_sorted_order(tmp_path):
    for name, text in [("b.txt", "second"), ("a.txt", "first"), ("c.md", "ignored")]:
        (tmp_path / name).write_text(text)
    splits = text_files.load_splits(str(tmp_path / "*.txt"), 0.5)
    assert splits["train"] + splits["validation"] == b"first\nsecond"


def test_byte_tokenizer_survives_invalid_utf8():
    tok = tokenizers.ByteTokenizer()
    raw = b"ok \xff\xfe\x80 bytes"
    ids = tok.encode(raw)
    assert bytes(ids.astype(np.uint8).tolist()) == raw
    assert tok.decode(ids).startswith("ok ")


def test_char_tokenizer_roundtrip_and_json(tmp_path):
    tok = tokenizers.build("char", "hello wörld".encode())
    path = str(tmp_path / "tok.json")
    tokenizers.save(tok, path)
    again = tokenizers.load(path)
    assert again.decode(again.encode("world hello")) == "world hello"
    with pytest.raises(BadInput, match="vocabulary"):
        again.encode("xyz")


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_windows_are_a_pure_function_of_the_batch_index(sampling):
    tokens = np.arange(1000, dtype=np.int32)
    ds = window_batches(tokens, 9, 8, seed=0, sampling=sampling)
    again = window_batches(tokens, 9, 8, seed=0, sampling=sampling)
    for i in [0, 5, 200]:
        np.testing.assert_array_equal(ds[i]["tokens"], again[i]["tokens"])
    rows = ds[3]["tokens"]
    assert rows.shape == (8, 9)
    np.testing.assert_array_equal(np.diff(rows, axis=1), 1)   # contiguous windows


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_processes_get_disjoint_rows_of_the_same_global_batch(sampling):
    tokens = np.arange(5000, dtype=np.int32)
    whole = window_batches(tokens, 9, 8, seed=1, sampling=sampling)
    parts = [window_batches(tokens, 9, 8, seed=1, sampling=sampling, process_index=p,
                            process_count=4) for p in range(4)]
    for i in range(3):
        np.testing.assert_array_equal(np.concatenate([p[i]["tokens"] for p in parts]),
                                      whole[i]["tokens"])


def test_sequential_windows_cover_an_epoch_without_repeats():
    tokens = np.arange(801, dtype=np.int32)        # 100 windows of 9 sharing ends
    ds = window_batches(tokens, 9, 10, seed=0, sampling="sequential")
    starts = np.concatenate([ds[i]["tokens"][:, 0] for i in range(10)])
    assert sorted(starts.tolist()) == list(range(0, 800, 8))


def test_iterator_state_restores_the_position():
    ds = window_batches(np.arange(1000, dtype=np.int32), 9, 4, seed=0)
    it = iter(ds.to_iter_dataset())
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = next(it)["tokens"]
    fresh = iter(ds.to_iter_dataset())
    fresh.set_state(state)
    np.testing.assert_array_equal(next(fresh)["tokens"], expected)


def test_split_never_cuts_a_utf8_character(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("é" * 1001)                    # 2002 bytes: the 90% cut lands mid-character
    splits = text_files.load_splits(str(path), 0.1)
    assert splits["train"].decode("utf-8") + splits["validation"].decode("utf-8") == "é" * 1001
