"""GPT fine-tuning: a classifier and an LM started from a pretrained GPT LM run."""


import jax
import numpy as np
import pytest

from bigmodels import checkpoint, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from helpers import experiment_config, read_metrics


def _experiment(name, **top):
    return experiment_config(name, sample_at_end="", **top)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("quickstart"))
    return workdir, train.run(_experiment("quickstart"), workdir)


def test_classifier_fine_tunes_from_the_lm(pretrained, tmp_path, capsys):
    source, lm = pretrained
    with pytest.raises(BadInput, match=r"missing from init_from checkpoint: classifier/"):
        train.run(_experiment("gpt_classify", init_from=source), str(tmp_path / "refused"))
    tuned = train.run(_experiment("gpt_classify", init_from=source,
                                  init_from_skip="^classifier/"), str(tmp_path / "tuned"))
    assert "freshly initialised: classifier/bias, classifier/kernel" in capsys.readouterr().out
    assert {"eval/accuracy", "eval/f1"} <= set(tuned.eval_metrics)
    # Step 1 started from the LM's backbone: with lr 0 it would still equal it.
    zero_lr = _experiment("gpt_classify", init_from=source, init_from_skip="^classifier/",
                          total_steps=1)
    zero_lr.optim.lr = 0.0
    first = train.run(zero_lr, str(tmp_path / "lr0"))
    backbone = tree.flatten(lm.state.params)
    for name, value in tree.flatten(first.state.params).items():
        if not name.startswith("classifier/"):
            np.testing.assert_array_equal(np.asarray(value), np.asarray(backbone[name]))


def test_lm_fine_tuning_starts_from_the_pretrained_params(pretrained, tmp_path):
    source, lm = pretrained
    config = _experiment("gpt_finetune_lm", init_from=source, total_steps=1)
    config.optim.lr = 0.0
    result = train.run(config, str(tmp_path))
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(lm.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(result.state.step) == 1 and read_metrics(str(tmp_path))
    assert checkpoint.latest_step(str(tmp_path)) == 1
