"""Every experiment file runs a few steps end to end through the real CLI path."""

import glob
import importlib.util
import os

import pytest

from bigmodels import train
from conftest import ROOT, SHARED
from helpers import read_metrics

EXPERIMENTS = sorted(glob.glob(str(ROOT / "experiments" / "*.py")))


def _load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.basename(p))
def test_experiment_runs_tiny(path, tmp_path, corpus, capsys):
    module = _load(path)
    assert "python -m bigmodels.main" in module.__doc__, "docstring must hold the command"
    config = module.get_config("tiny")
    if config.data.kind == "sklearn":
        pytest.importorskip("sklearn")       # the optional extra bigmodels[sklearn]
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


def test_quickstart_default_corpus_is_offline_stdlib():
    config = _load(str(ROOT / "experiments" / "quickstart.py")).get_config()
    assert glob.glob(config.data.path)


@pytest.mark.skipif(not (SHARED / "data" / "tinyshakespeare.txt").exists(),
                    reason="../shared/data is not present")
def test_shakespeare_char_vocab_is_65(tmp_path):
    config = _load(str(ROOT / "experiments" / "shakespeare_char.py")).get_config("tiny")
    config.data.path = str(SHARED / "data" / "tinyshakespeare.txt")
    result = train.run(config, str(tmp_path))
    assert result.data.tokenizer.vocab_size == 65
    assert result.data.train_tokens == 1_003_854 and result.data.eval_tokens == 111_540
