"""A run stopped and resumed from its checkpoint matches the uninterrupted run exactly."""

import os
import shutil

import jax
import numpy as np

from bigmodels import checkpoint, train
from helpers import read_metrics, tiny_lm_config


def test_resume_is_exact(corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=8, ckpt_every=4, eval_every=4)
    config.model.dropout = 0.1          # exercises the per-step RNG too
    config.optim.schedule = "warmup_cosine"
    config.optim.warmup_steps = 2
    full = str(tmp_path / "full")
    result = train.run(config, full)

    # The same run, stopped after the step-4 checkpoint: drop step 8 and later logs.
    resumed = str(tmp_path / "resumed")
    shutil.copytree(full, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "8"))
    assert checkpoint.latest_step(resumed) == 4
    again = train.run(config, resumed)

    assert read_metrics(resumed) == read_metrics(full)          # bit-identical losses
    assert read_metrics(resumed, "eval/loss") == read_metrics(full, "eval/loss")
    for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(again.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_params_load_as_numpy_on_any_topology(corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=2, ckpt_every=2)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    params = checkpoint.load(str(tmp_path))
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(params)):
        assert isinstance(b, np.ndarray)
        np.testing.assert_array_equal(np.asarray(a), b)
