"""bpe: and hf: tokenizers: learnt or loaded with the `tokenizers` library, saved with the
run as a tokenizer.json that the library reads back with the same ids, exact round trips.
sentencepiece: models: the library's ids, saved with the run as the model's bytes."""

import base64
import inspect
import io
import json
import textwrap

import pytest
import sentencepiece
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from bigmodels import train
from bigmodels.data import text_checks, tokenizers
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


def test_a_hub_tokenizer_that_cannot_be_fetched_is_one_line(monkeypatch, tmp_path):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)      # never touch the network
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BadInput, match=r"hf:no-org/no-model: not a local path, and the "
                                       r"hub download failed") as refused:
        tokenizers.build("hf:no-org/no-model", b"some text")
    assert "\n" not in str(refused.value)


def test_specials_on_a_bpe_survive_saving(tmp_path):
    bpe = tokenizers.build("bpe:300", (TEXT * 50).encode(), specials=("[PAD]", "[MASK]"))
    tokenizers.save(bpe, str(tmp_path / "tokenizer.json"))
    back = tokenizers.load(str(tmp_path / "tokenizer.json"))
    assert isinstance(back.base, tokenizers.HFTokenizer)
    assert back.vocab_size == bpe.vocab_size == bpe.base_vocab_size + 2
    assert back.id("[MASK]") == bpe.id("[MASK]") == bpe.base_vocab_size + 1
    assert back.encode(TEXT).tolist() == bpe.encode(TEXT).tolist()


def _wordpiece_with_bert_specials(path) -> str:
    """A small WordPiece tokenizer.json whose vocabulary starts with BERT's specials, as
    bert-base-uncased's does."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=200, show_progress=False, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator([TEXT * 20], trainer)
    tok.save(str(path))
    return str(path)


def test_specials_a_pretrained_tokenizer_has_keep_its_ids(tmp_path):
    hf = tokenizers.build(f"hf:{_wordpiece_with_bert_specials(tmp_path / 'wp.json')}", b"")
    both = tokenizers.build(f"hf:{tmp_path / 'wp.json'}", b"",
                            specials=("[PAD]", "[CLS]", "[SEP]", "[MASK]", "<eos>"))
    # BERT's four are the tokenizer's own (ids 0, 2, 3, 4); <eos> is new, after the vocab.
    assert [both.id(n) for n in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")] == [0, 2, 3, 4]
    assert both.id("<eos>") == hf.vocab_size and both.vocab_size == hf.vocab_size + 1
    ids = [both.id("[CLS]"), *both.encode("return x").tolist(), both.id("[SEP]"),
           both.id("<eos>")]
    assert both.is_special(ids).tolist() == [True] + [False] * (len(ids) - 3) + [True, True]
    assert both.decode(ids) == hf.decode(ids[1:-2])
    assert both.decode(ids, skip_specials=False).startswith("[CLS]")
    tokenizers.save(both, str(tmp_path / "tokenizer.json"))
    back = tokenizers.load(str(tmp_path / "tokenizer.json"))
    assert [back.id(n) for n in both.specials] == [both.id(n) for n in both.specials]
    # A run saved before own specials existed appended all of them: still read that way.
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    del spec["own_specials"]
    old = tokenizers.from_json(spec)
    assert old.id("[PAD]") == hf.vocab_size and old.vocab_size == hf.vocab_size + 5


# A unigram model as trained by default (NFKC, unknown characters to <unk>), and a BPE
# that keeps every character (byte fallback, no normalization), so decodes exactly.
SENTENCEPIECE_MODELS = {
    "unigram": dict(model_type="unigram", vocab_size=100),
    "exact_bpe": dict(model_type="bpe", vocab_size=400, byte_fallback=True,
                      normalization_rule_name="identity", remove_extra_whitespaces=False),
}
SAMPLES = [TEXT, "", "naïve café — 東京 🙂", "  spaced   out\n\n", "tab\tand\x00nul"]


def _sentencepiece_model(text: str, path, **options) -> str:
    """A SentencePiece model trained on the lines of `text`, written to `path`."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()),
                                             model_writer=model, minloglevel=2, **options)
    path.write_bytes(model.getvalue())
    return str(path)


@pytest.mark.parametrize("name", sorted(SENTENCEPIECE_MODELS))
def test_sentencepiece_ids_equal_the_librarys_and_survive_saving(name, tmp_path):
    text = inspect.getsource(textwrap) + TEXT * 20
    path = _sentencepiece_model(text, tmp_path / "sp.model", **SENTENCEPIECE_MODELS[name])
    reference = sentencepiece.SentencePieceProcessor(model_file=path)
    ours = tokenizers.build(f"sentencepiece:{path}", b"")
    assert ours.vocab_size == reference.get_piece_size()
    tokenizers.save(ours, str(tmp_path / "tokenizer.json"))
    back = tokenizers.load(str(tmp_path / "tokenizer.json"))
    for sample in SAMPLES:
        ids = ours.encode(sample)
        assert ids.dtype == "int32" and ids.tolist() == reference.encode(sample)
        assert ours.encode(sample.encode()).tolist() == ids.tolist()
        assert back.encode(sample).tolist() == ids.tolist()
        assert ours.decode(ids) == back.decode(ids) == reference.decode(ids.tolist())
        if name == "exact_bpe":
            assert ours.decode(ids) == sample


def test_specials_on_a_sentencepiece_model_survive_saving(tmp_path):
    path = _sentencepiece_model(inspect.getsource(textwrap), tmp_path / "sp.model",
                                vocab_size=100)
    sp = tokenizers.build(f"sentencepiece:{path}", b"", specials=("[PAD]", "[MASK]"))
    tokenizers.save(sp, str(tmp_path / "tokenizer.json"))
    back = tokenizers.load(str(tmp_path / "tokenizer.json"))
    assert isinstance(back.base, tokenizers.SentencePieceTokenizer)
    assert back.vocab_size == sp.vocab_size == 100 + 2
    assert back.id("[MASK]") == sp.id("[MASK]") == 101
    ids = [*back.encode("class Foo"), back.id("[MASK]")]
    assert back.decode(ids, skip_specials=False) == "class Foo[MASK]"


def test_a_sentencepiece_model_is_the_runs_tokenizer(corpus, tmp_path):
    path = _sentencepiece_model(open(corpus).read()[:200_000], tmp_path / "sp.model",
                                vocab_size=300)
    result, saved = _trained(corpus, tmp_path, f"sentencepiece:{path}")
    assert result.config.model.vocab_size == 300
    with open(saved) as f:                       # the model file's bytes, as they were
        assert base64.b64decode(json.load(f)["model"]) == open(path, "rb").read()
    reference = sentencepiece.SentencePieceProcessor(model_file=path)
    assert tokenizers.load(saved).encode(TEXT).tolist() == reference.encode(TEXT)


def test_bad_sentencepiece_models_are_one_line_errors(tmp_path):
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("not a model\n")
    empty = tmp_path / "empty.model"
    empty.write_bytes(b"")
    for path in ("/nonexistent/sp.model", str(tmp_path), str(not_a_model), str(empty)):
        with pytest.raises(BadInput, match=f"^data.tokenizer: {path}: [^\n]*$"):
            tokenizers.build(f"sentencepiece:{path}", b"some text")
    saved = tmp_path / "tokenizer.json"
    saved.write_text(json.dumps({"kind": "sentencepiece", "model": "bm90IGEgbW9kZWw="}))
    with pytest.raises(BadInput, match="not a SentencePiece model"):
        tokenizers.load(str(saved))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(BadInput, match="not UTF-8 text at byte 3"):
        text_checks.check_text([str(latin1)], f"sentencepiece:{empty}")
