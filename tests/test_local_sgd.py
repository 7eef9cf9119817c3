"""Local SGD / DiLoCo: replicas over the data axis, outer steps on averaged deltas."""

import jax
import numpy as np
import pytest

from bigmodels import train
from bigmodels.errors import BadInput
from helpers import read_metrics, tiny_lm_config


def _config(corpus, **local):
    config = tiny_lm_config(corpus, total_steps=8, log_every=1, ckpt_every=4, eval_every=4)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    config.optim.update(name="sgd", lr=0.3, weight_decay=0.0, clip_norm=0.0)
    config.local_sgd.update(**local)
    return config


def test_one_inner_step_and_outer_sgd_at_lr_1_is_data_parallel_sgd(corpus, tmp_path):
    plain = train.run(_config(corpus), str(tmp_path / "plain"))
    local = train.run(_config(corpus, inner_steps=1, outer_lr=1.0, outer_momentum=0.0),
                      str(tmp_path / "local"))
    np.testing.assert_allclose(list(read_metrics(str(tmp_path / "local")).values()),
                               list(read_metrics(str(tmp_path / "plain")).values()), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(local.state.params), jax.tree.leaves(plain.state.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_diloco_trains_and_replicas_restart_from_the_outer_params(corpus, tmp_path):
    config = _config(corpus, inner_steps=4)        # outer Nesterov SGD, lr 0.7
    config.optim.update(name="adamw", lr=3e-3)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert losses[8] < losses[1]
    # Step 8 was an outer step: every replica holds exactly the new global params.
    replicas = result.state.opt_state["replicas"]
    for p, r in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(replicas),
                    strict=True):
        assert r.shape == (2,) + p.shape
        np.testing.assert_array_equal(np.asarray(r[0]), np.asarray(p))
        np.testing.assert_array_equal(np.asarray(r[1]), np.asarray(p))
    assert read_metrics(str(tmp_path), "eval/loss")[8] < read_metrics(
        str(tmp_path), "eval/loss")[4]


def test_resume_is_exact_between_outer_steps(corpus, tmp_path):
    import os
    import shutil
    config = _config(corpus, inner_steps=3)        # checkpoints at 4 and 8: mid-round
    full = train.run(config, str(tmp_path / "full"))
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(os.path.join(tmp_path / "resumed", "checkpoints", "8"))
    again = train.run(config, str(tmp_path / "resumed"))
    assert read_metrics(str(tmp_path / "resumed")) == read_metrics(str(tmp_path / "full"))
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(again.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_outer_settings_are_bad_input(corpus, tmp_path):
    with pytest.raises(BadInput, match="local_sgd"):
        train.run(_config(corpus, inner_steps=2, outer_lr=0.0), str(tmp_path))
