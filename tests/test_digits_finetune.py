"""Class subsets of a dataset and the pretrain-on-0-4, fine-tune-on-5-9 regime."""


import numpy as np
import pytest

from bigmodels import train
from bigmodels.checkpoint import tree
from bigmodels.data.sklearn_data import load_splits, select_classes
from bigmodels.errors import BadInput
from helpers import experiment_config


def _config(arg):
    return experiment_config("digits_finetune", arg)


def test_select_classes_relabels_in_listed_order_and_caps_per_class():
    y = np.array([0, 5, 7, 5, 0, 7, 5, 3])
    x = np.arange(len(y))[:, None]
    names = [str(i) for i in range(10)]
    xs, ys, kept = select_classes(x, y, names, "7,5", per_class=2)
    assert kept == ["7", "5"]
    np.testing.assert_array_equal(xs[:, 0], [1, 2, 3, 5])     # rows in order, 2 per class
    np.testing.assert_array_equal(ys, [1, 0, 1, 0])           # 7 -> 0, 5 -> 1
    for bad in ("5,5", "10", "five"):
        with pytest.raises(BadInput, match="data.classes"):
            select_classes(x, y, names, bad)


def test_a_per_class_seed_draws_a_different_labelled_subset_of_the_same_size():
    y = np.repeat(np.arange(3), 20)
    x = np.arange(len(y))[:, None]
    names = ["a", "b", "c"]
    draws = [select_classes(x, y, names, "", per_class=4, per_class_seed=s) for s in (0, 1)]
    for xs, ys, _ in draws:
        np.testing.assert_array_equal(np.bincount(ys), [4, 4, 4])
        assert np.all(y[xs[:, 0]] == ys)                       # labels still match rows
    assert not np.array_equal(draws[0][0], draws[1][0])
    again = select_classes(x, y, names, "", per_class=4, per_class_seed=0)
    np.testing.assert_array_equal(again[0], draws[0][0])      # a seed is one fixed subset


def test_fine_tuning_on_5_to_9_starts_from_the_0_to_4_backbone(tmp_path, capsys):
    pretrained = train.run(_config("pretrain_tiny"), str(tmp_path / "0to4"))
    assert pretrained.data.class_names == ["0", "1", "2", "3", "4"]
    config = _config("tiny")
    config.update(init_from=str(tmp_path / "0to4"), total_steps=1)
    config.optim.lr = 0.0
    tuned = train.run(config, str(tmp_path / "5to9"))
    assert "freshly initialised: head/bias, head/kernel" in capsys.readouterr().out
    assert tuned.data.class_names == ["5", "6", "7", "8", "9"]
    before, after = tree.flatten(pretrained.state.params), tree.flatten(tuned.state.params)
    for name, value in after.items():
        if not name.startswith("head/"):
            np.testing.assert_array_equal(np.asarray(value), np.asarray(before[name]))
    labels = np.concatenate([b["label"][b["weight"] > 0] for b in tuned.data.eval])
    _, _, test_y = load_splits("digits", config.data.val_fraction, config.data.tfds_dir)["test"]
    assert set(labels.tolist()) == set(range(5)) and len(labels) == (test_y >= 5).sum() > 150
