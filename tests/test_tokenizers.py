"""bpe: and hf: tokenizers: learnt or loaded with the `tokenizers` library, saved with the
run as a tokenizer.json that the library reads back with the same ids, exact round trips."""

import os

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from bigmodels import train
from bigmodels.data import tokenizers
from bigmodels.errors import BadInput
from helpers import read_metrics, tiny_lm_config

TEXT = "def naïve(x):\n    return {'ä': x ≥ 0}  # ✓\n\n\tclass Foo:  pass\n"


def _trained(corpus, tmp_path, tokenizer: str):
    config = tiny_lm_config(corpus, total_steps=2, eval_every=2, ckpt_every=2)
    config.data.tokenizer = tokenizer
    result = train.run(config, str(tmp_path / "run"))
    saved = str(tmp_path / "run" / "tokenizer.json")
    return result, saved


def test_bpe_is_learnt_from_the_train_split_and_saved_for_the_library(corpus, tmp_path):
    result, saved = _trained(corpus, tmp_path, "bpe:400")
    assert result.config.model.vocab_size == 400 == result.data.tokenizer.vocab_size
    reference = Tokenizer.from_file(saved)
    ours = tokenizers.load(saved)
    text = open(corpus).read()[:5000] + TEXT
    assert ours.encode(text).tolist() == reference.encode(text).ids
    assert ours.decode(ours.encode(text)) == text                # byte-level: exact
    assert len(ours.encode(text)) < 0.6 * len(text.encode())     # merges were learnt
    # Resuming keeps the saved vocabulary, whatever the text now holds.
    config = result.config
    config.total_steps = 3
    train.run(config, str(tmp_path / "run"))
    assert sorted(read_metrics(str(tmp_path / "run"))) == [1, 2, 3]
    assert Tokenizer.from_file(saved).to_str() == reference.to_str()


def test_an_hf_tokenizer_json_is_the_runs_tokenizer(corpus, tmp_path):
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    wordpiece.train_from_iterator([open(corpus).read()[:200_000]], trainers.WordPieceTrainer(
        vocab_size=500, special_tokens=["[UNK]"], show_progress=False))
    path = str(tmp_path / "wordpiece.json")
    wordpiece.save(path)
    result, saved = _trained(corpus, tmp_path, f"hf:{path}")
    assert result.config.model.vocab_size == wordpiece.get_vocab_size()
    assert tokenizers.load(saved).encode(TEXT).tolist() == wordpiece.encode(TEXT).ids
    assert Tokenizer.from_file(saved).to_str() == wordpiece.to_str()


@pytest.mark.parametrize("kind,message", [
    ("bpe:lots", "expected bpe:<vocabulary size>"),
    ("bpe:100", "at least the 256 byte symbols"),
    ("hf:/nonexistent/tokenizer.json", "not a readable tokenizer.json"),
    ("wordpiece", "unknown tokenizer 'wordpiece'"),
])
def test_bad_tokenizer_settings_are_one_line_errors(kind, message):
    with pytest.raises(BadInput, match=message):
        tokenizers.build(kind, b"some text")


def test_specials_on_a_bpe_survive_saving(tmp_path):
    bpe = tokenizers.build("bpe:300", (TEXT * 50).encode(), specials=("[PAD]", "[MASK]"))
    tokenizers.save(bpe, str(tmp_path / "tokenizer.json"))
    back = tokenizers.load(str(tmp_path / "tokenizer.json"))
    assert isinstance(back.base, tokenizers.HFTokenizer)
    assert back.vocab_size == bpe.vocab_size == bpe.base_vocab_size + 2
    assert back.id("[MASK]") == bpe.id("[MASK]") == bpe.base_vocab_size + 1
    assert back.encode(TEXT).tolist() == bpe.encode(TEXT).tolist()
