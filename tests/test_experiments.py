"""Every experiment file runs a few steps end to end through the real CLI path."""

import glob
import os
import string

import pytest

from bigmodels import data as data_lib, train
from bigmodels.errors import BadInput
from conftest import ROOT
from helpers import load_experiment, read_metrics

EXPERIMENTS = sorted(glob.glob(str(ROOT / "experiments" / "*.py")))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.basename(p))
def test_experiment_runs_tiny(path, tmp_path, corpus, capsys):
    module = load_experiment(path)
    assert "python -m bigmodels.main" in module.__doc__, "docstring must hold the command"
    config = module.get_config("tiny")
    if not config.data.path and config.data.kind in ("text", "text_classes"):
        config.data.path = corpus
    if config.get("fid_classifier"):
        config.fid_classifier = ""           # test_gan.py trains one and checks eval/fid
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert max(losses) == config.total_steps
    assert "eval/loss" in result.eval_metrics
    has_tokenizer = getattr(result.data, "tokenizer", None) is not None
    for name in ("config.json", "metrics.jsonl") + (("tokenizer.json",) * has_tokenizer):
        assert (tmp_path / name).exists()
    assert os.listdir(tmp_path / "tensorboard")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.basename(p))
def test_experiment_declares_its_variants(path):
    """Each `:variant` an experiment declares loads; any other is refused, not silently
    run as the default (a config only: nothing is trained or downloaded)."""
    module = load_experiment(path)
    assert "tiny" in module.VARIANTS and "" not in module.VARIANTS
    for variant in ("",) + module.VARIANTS:
        assert "model" in module.get_config(variant), variant
    with pytest.raises(BadInput) as refused:
        module.get_config("huge")
    assert str(refused.value) == f"unknown variant 'huge'; known: {', '.join(module.VARIANTS)}"


def test_quickstart_default_corpus_is_offline_stdlib():
    config = load_experiment(str(ROOT / "experiments" / "quickstart.py")).get_config()
    assert glob.glob(config.data.path)


# tests/fixtures/tiny_play.txt (written by make_tiny_play.py there): a small invented
# play in Tiny Shakespeare's layout and with exactly its 65 characters, all ASCII.
TINY_PLAY = ROOT / "tests" / "fixtures" / "tiny_play.txt"
SHAKESPEARE_CHARS = "\n !$&',-.3:;?" + string.ascii_uppercase + string.ascii_lowercase


def test_shakespeare_char_vocabulary_and_split(tmp_path):
    text = TINY_PLAY.read_text()
    assert text.isascii() and set(text) == set(SHAKESPEARE_CHARS) and len(text) == 13_735
    config = load_experiment(str(ROOT / "experiments" / "shakespeare_char.py")).get_config("tiny")
    config.data.path = str(TINY_PLAY)
    data = data_lib.build(config, str(tmp_path))
    assert data.tokenizer.vocab_size == len(SHAKESPEARE_CHARS) == 65
    # nanoGPT's split: the first 90% of the characters train, the last 10% evaluate.
    assert (data.train_tokens, data.eval_tokens) == (12_361, 1_374)
    ids = data.tokenizer.encode(text)
    assert data.tokenizer.decode(ids) == text and sorted(set(ids.tolist())) == list(range(65))
