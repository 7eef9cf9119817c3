"""GPT fine-tuning: a classifier and an LM started from a pretrained GPT LM run."""

import chex
import jax
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
    # Step 1 starts from the LM's backbone: with lr 0 it still equals it.
    zero_lr = _experiment("gpt_classify", init_from=source, init_from_skip="^classifier/",
                          total_steps=1)
    zero_lr.optim.lr = 0.0
    first = train.run(zero_lr, str(tmp_path / "lr0"))
    assert "freshly initialised: classifier/bias, classifier/kernel" in capsys.readouterr().out
    backbone = tree.flatten(lm.state.params)
    start = {n: v for n, v in tree.flatten(first.state.params).items()
             if not n.startswith("classifier/")}
    chex.assert_trees_all_equal(jax.device_get(start),
                                jax.device_get({n: backbone[n] for n in start}))
    # Fine-tuning from there lowers the eval loss below the starting point's (at a
    # constant lr: 6 steps of the 30-step warmup would hardly move).
    config = _experiment("gpt_classify", init_from=source, init_from_skip="^classifier/")
    config.optim.update(schedule="constant", warmup_steps=0)
    tuned = train.run(config, str(tmp_path / "tuned"))
    assert tuned.eval_metrics["eval/loss"] < first.eval_metrics["eval/loss"] - 0.01, (
        tuned.eval_metrics, first.eval_metrics)


def test_lm_fine_tuning_starts_from_the_pretrained_params(pretrained, tmp_path):
    source, lm = pretrained
    config = _experiment("gpt_finetune_lm", init_from=source, total_steps=1)
    config.optim.lr = 0.0
    result = train.run(config, str(tmp_path))
    chex.assert_trees_all_equal(jax.device_get(result.state.params),
                                jax.device_get(lm.state.params))
    assert int(result.state.step) == 1 and read_metrics(str(tmp_path))
    assert checkpoint.latest_step(str(tmp_path)) == 1
