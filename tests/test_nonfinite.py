"""A NaN batch: nan_policy=stop stops within one step, skip drops the update; both
report the step and per-layer gradient norms."""

import jax
import numpy as np
import pytest

from bigmodels import checkpoint, data as data_lib, train
from bigmodels.train import loop
from helpers import read_metrics, tiny_lm_config

BAD_STEP = 3


@pytest.fixture
def nan_batch_at_step_3(monkeypatch):
    """Corrupts the batch of step 3: an out-of-range token id embeds as NaN."""
    build = data_lib.build

    def corrupt(index, batch):
        if index + 1 == BAD_STEP:
            batch = {**batch, "tokens": np.full_like(batch["tokens"], 10**6)}
        return batch

    def build_with_bad_batch(*args, **kwargs):
        data = build(*args, **kwargs)
        data.train = data.train.map_with_index(corrupt)
        return data

    monkeypatch.setattr(data_lib, "build", build_with_bad_batch)


def test_stop_halts_at_the_bad_step(corpus, tmp_path, nan_batch_at_step_3):
    config = tiny_lm_config(corpus, total_steps=8, ckpt_every=1, keep_checkpoints=10)
    with pytest.raises(loop.NonFiniteLoss) as error:
        train.run(config, str(tmp_path))
    message = str(error.value)
    assert f"step {BAD_STEP}" in message and "nan_policy=stop" in message
    assert "per-layer grad norms: block_0=nan" in message
    assert read_metrics(str(tmp_path), "train/nonfinite") == {BAD_STEP: 1.0}
    assert max(read_metrics(str(tmp_path))) == BAD_STEP - 1    # nothing logged after it
    assert checkpoint.latest_step(str(tmp_path)) == BAD_STEP - 1   # the bad step is not saved
    assert all(np.isfinite(a).all() for a in _leaves(checkpoint.load(str(tmp_path))))


def test_skip_drops_the_update_and_goes_on(corpus, tmp_path, nan_batch_at_step_3, capfd):
    config = tiny_lm_config(corpus, total_steps=6, ckpt_every=1, keep_checkpoints=10,
                            nan_policy="skip")
    result = train.run(config, str(tmp_path))
    assert f"non-finite loss or gradient at step {BAD_STEP}" in capfd.readouterr().err
    before = checkpoint.load(str(tmp_path), step=BAD_STEP - 1, prefix="")
    after = checkpoint.load(str(tmp_path), step=BAD_STEP, prefix="")
    assert int(after["step"]) == BAD_STEP                       # the step still counts
    for a, b in zip(_leaves(before["params"]), _leaves(after["params"])):
        np.testing.assert_array_equal(a, b)                     # ... but changed nothing
    losses = read_metrics(str(tmp_path))
    assert BAD_STEP not in losses and all(np.isfinite(v) for v in losses.values())
    assert int(result.state.step) == 6


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]
