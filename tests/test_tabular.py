"""Tabular data from scikit-learn: preprocessing fitted on train only and kept with the
run, eval over the whole test split, R² and F1 as sklearn computes them, and MLPs that
train on a mixed mesh."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from bigmodels import train
from bigmodels.data import preprocess, sklearn_data
from bigmodels.errors import BadInput
from bigmodels.tasks.binary import BinaryClassify
from bigmodels.tasks.regression import Regress
from helpers import experiment_config, read_metrics


_experiment = experiment_config


def _config(name="breast_cancer", **data):
    c = _experiment("tabular_mlp")
    c.data = sklearn_data.sklearn_data_config(name, **data)
    c.batch_size = 32
    return c


def test_rows_with_missing_values_are_dropped():
    x = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0], [5.0, 6.0]])
    y = np.array([0.5, 1.0, np.nan, 2.0])
    kept_x, kept_y = preprocess.drop_missing(x, y)
    np.testing.assert_array_equal(kept_x, [[1.0, 2.0], [5.0, 6.0]])
    np.testing.assert_array_equal(kept_y, [0.5, 2.0])
    labels = np.array([0, 1, 1, 0])                       # integer labels are never NaN
    assert len(preprocess.drop_missing(x, labels)[0]) == 3


def test_statistics_are_fitted_on_train_only_saved_and_reloaded(tmp_path):
    config = _config(log1p="all")
    data = sklearn_data.build(config, str(tmp_path))
    splits = sklearn_data.load_splits("breast_cancer", 0.2)
    train_x, test_x = np.log1p(splits["train"][1]), np.log1p(splits["test"][1])
    stats = data.stats["features"]
    np.testing.assert_allclose(stats.mean, train_x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, train_x.std(0), rtol=1e-6)
    assert not np.allclose(stats.mean, np.concatenate([train_x, test_x]).mean(0), rtol=1e-4)

    data.save(str(tmp_path))
    saved = json.loads((tmp_path / sklearn_data.PREPROCESS_FILE).read_text())
    saved["features"]["mean"] = [m + 1.0 for m in saved["features"]["mean"]]
    (tmp_path / sklearn_data.PREPROCESS_FILE).write_text(json.dumps(saved))
    resumed = sklearn_data.build(config, str(tmp_path))     # reads the file, never refits
    np.testing.assert_allclose(resumed.stats["features"].mean, stats.mean + 1.0)
    np.testing.assert_allclose(resumed.eval[0]["features"],
                               data.eval[0]["features"] - 1.0 / stats.std, atol=1e-5)


def test_eval_counts_each_test_example_once(tmp_path):
    data = sklearn_data.build(_config(), str(tmp_path))
    _, _, test_y = sklearn_data.load_splits("breast_cancer", 0.2)["test"]
    batches = [data.eval[i] for i in range(len(data.eval))]
    assert len(test_y) % 32                                  # the last batch is padded
    weights = np.concatenate([b["weight"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    assert weights.sum() == len(test_y)
    np.testing.assert_array_equal(labels[weights > 0], test_y)


def test_train_batches_are_a_function_of_seed_and_step(tmp_path):
    a = sklearn_data.build(_config(), str(tmp_path / "a"))
    b = sklearn_data.build(_config(), str(tmp_path / "b"))
    for i in (0, 7, 40):                                    # 40: a later epoch
        np.testing.assert_array_equal(a.train[i]["features"], b.train[i]["features"])
    c = _config()
    c.seed = 1
    assert not np.array_equal(a.train[0]["label"],
                              sklearn_data.build(c, str(tmp_path / "c")).train[0]["label"])
    n = len(sklearn_data.load_splits("breast_cancer", 0.2)["train"][2])
    per_epoch = n // 32                                      # every row once per epoch
    rows = np.concatenate([a.train[i]["features"] for i in range(per_epoch)])
    assert len(np.unique(rows, axis=0)) == len(rows)


def test_bad_data_config_is_refused(tmp_path):
    with pytest.raises(BadInput, match="data.name"):
        sklearn_data.build(_config("iris"), str(tmp_path))
    with pytest.raises(BadInput, match="data.log1p"):
        sklearn_data.build(_config(log1p="0,99"), str(tmp_path))
    with pytest.raises(BadInput, match="data.augment"):
        sklearn_data.build(_config(augment=True), str(tmp_path))


class _Given(nn.Module):
    """A "model" whose output is its input: the predictions under test."""

    @nn.compact
    def __call__(self, x, train=False):
        return x


def _sums_over_batches(task, predictions, truth, key, batch=16):
    """The task's eval sums over padded batches of 16, as the loop adds them."""
    sums = {}
    n = len(truth)
    for start in range(0, n, batch):
        index = np.arange(start, start + batch)
        valid = index < n
        index = np.where(valid, index, 0)
        out = task.eval_sums({}, {}, {"features": jnp.asarray(predictions[index, None]),
                                      key: jnp.asarray(truth[index]),
                                      "weight": jnp.asarray(valid, jnp.float32)})
        for name, (s, w) in jax.device_get(out).items():
            old = sums.get(name, (0.0, 0.0))
            sums[name] = (old[0] + np.asarray(s, np.float64), old[1] + float(w))
    return task.finalize_eval(sums)


def test_r2_and_f1_match_sklearn():
    from sklearn import metrics
    rng = np.random.default_rng(0)
    y = rng.normal(size=83).astype(np.float32) * 3 + 1
    guess = (y + rng.normal(size=83) * 2).astype(np.float32)
    out = _sums_over_batches(Regress(_Given()), guess, y, "target")
    assert out["r2"] == pytest.approx(metrics.r2_score(y, guess), rel=1e-5)
    assert out["mse"] == pytest.approx(metrics.mean_squared_error(y, guess), rel=1e-5)

    labels = rng.integers(0, 2, size=83).astype(np.int32)
    logits = (rng.normal(size=83) + (labels - 0.5)).astype(np.float32)
    out = _sums_over_batches(BinaryClassify(_Given()), logits, labels, "label")
    predicted = (logits > 0).astype(int)
    assert out["f1"] == pytest.approx(metrics.f1_score(labels, predicted), rel=1e-9)
    assert out["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predicted))


def _smoke(config, tmp_path):
    config.update(total_steps=20, log_every=1, eval_every=20, ckpt_every=20, batch_size=32)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.05
    assert (tmp_path / sklearn_data.PREPROCESS_FILE).exists()
    kernels = [x for x in jax.tree.leaves(result.state.params) if x.ndim == 2]
    assert any(not x.sharding.is_fully_replicated for x in kernels)
    return result


def test_binary_mlp_trains_on_a_mixed_mesh(tmp_path):
    config = _experiment("tabular_mlp")
    config.model.hidden = (32, 16)
    result = _smoke(config, tmp_path)
    assert set(result.eval_metrics) == {"eval/loss", "eval/accuracy", "eval/f1"}
    assert result.eval_metrics["eval/accuracy"] > 0.8


def test_regression_mlp_trains_on_a_mixed_mesh(tmp_path):
    config = _experiment("tabular_regression")
    config.optim.lr = 0.05
    result = _smoke(config, tmp_path)
    assert set(result.eval_metrics) == {"eval/loss", "eval/mse", "eval/r2"}
    assert result.eval_metrics["eval/r2"] > 0.0


def test_resumed_run_keeps_its_statistics_and_matches_an_uninterrupted_one(tmp_path):
    def config(steps):
        c = _experiment("tabular_regression")
        c.update(total_steps=steps, log_every=1, eval_every=10, ckpt_every=10, batch_size=32)
        return c

    whole = train.run(config(20), str(tmp_path / "whole"))
    train.run(config(10), str(tmp_path / "cut"))
    saved = (tmp_path / "cut" / sklearn_data.PREPROCESS_FILE).read_text()
    resumed = train.run(config(20), str(tmp_path / "cut"))
    assert (tmp_path / "cut" / sklearn_data.PREPROCESS_FILE).read_text() == saved
    assert resumed.eval_metrics == whole.eval_metrics
