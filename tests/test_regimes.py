"""A regime written outside bigmodels/train/, plugged in through the REGIMES table only:
it checks the model, keeps its own state, changes the state after each update, adds a
train metric, wraps a group's optimizer, wraps the task and acts after each eval. (The
update-rule and whole-optimizer hooks are exercised by the alternating-groups and
local-SGD regimes, in test_gan.py and test_local_sgd.py.)"""

import jax
import numpy as np
import optax
import pytest

from bigmodels import checkpoint, regimes, train
from bigmodels.errors import BadInput
from bigmodels.regimes.base import Regime
from helpers import read_metrics, tiny_lm_config

EVALS = []          # (step, eval loss seen by after_eval's run context) per call


class CountingRegime(Regime):
    """Counts updates in its own state, holds block_1 still through its optimizer
    transform, and logs the count."""

    name = "counting"

    def wrap_task(self, task):
        self.wrapped = type(task).__name__
        return task

    def check(self, abstract_params, abstract_model_state) -> None:
        if "block_1" not in abstract_params:
            raise BadInput("counting: needs a model with block_1")

    def init_state(self, params):
        return {"updates": jax.numpy.zeros((), jax.numpy.int32)}

    def transform_group(self, tx):
        still = lambda params: jax.tree_util.tree_map_with_path(      # noqa: E731
            lambda path, _: "still" if "block_1" in jax.tree_util.keystr(path) else "moving",
            params)
        return optax.multi_transform({"moving": tx, "still": optax.set_to_zero()}, still)

    def post_update(self, old_state, new_state):
        counted = {"updates": old_state.extra[self.name]["updates"] + 1}
        return new_state.replace(extra={**new_state.extra, self.name: counted})

    def step_metrics(self, old_state, new_state) -> dict:
        return {"updates": new_state.extra[self.name]["updates"].astype(jax.numpy.float32)}

    def after_eval(self, run, step, state) -> None:
        EVALS.append((step, run.is_primary, run.task is not None))


def from_config(config, task, mesh):
    return [CountingRegime()] if config.seed == 7 else []


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setattr(regimes, "REGIMES", regimes.REGIMES + (__name__,))
    EVALS.clear()


def test_a_regime_plugs_into_every_hook(corpus, tmp_path, counting):
    config = tiny_lm_config(corpus, seed=7, total_steps=4, eval_every=2, ckpt_every=4,
                            log_every=1)
    result = train.run(config, str(tmp_path))
    assert int(result.state.extra["counting"]["updates"]) == 4
    assert read_metrics(str(tmp_path), "train/updates") == {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0}
    assert EVALS == [(2, True, True), (4, True, True)]
    start = checkpoint.load(str(tmp_path), step=4, prefix="")
    assert int(start["extra"]["counting"]["updates"]) == 4        # saved with the state
    one_step = train.run(tiny_lm_config(corpus, seed=7, total_steps=1, eval_every=1,
                                        ckpt_every=1), str(tmp_path / "one_step")).state
    # Between step 1 and step 4, block_1 never moves (its group transform); block_0 does.
    moved = {name: not np.allclose(np.asarray(a), np.asarray(b))
             for (name, a), (_, b) in zip(_named(one_step.params),
                                          _named(result.state.params))}
    assert not any(v for k, v in moved.items() if "block_1" in k)
    assert any(v for k, v in moved.items() if "block_0" in k)


def test_a_regime_check_refuses_a_model_that_does_not_fit(corpus, tmp_path, counting):
    config = tiny_lm_config(corpus, seed=7)
    config.model.num_layers = 1
    with pytest.raises(BadInput, match="counting: needs a model with block_1"):
        train.run(config, str(tmp_path))
    assert not any(tmp_path.iterdir())           # refused before anything was written


def test_a_run_resumes_the_regime_state(corpus, tmp_path, counting):
    config = tiny_lm_config(corpus, seed=7, total_steps=2, eval_every=100, ckpt_every=2)
    train.run(config, str(tmp_path))
    config.total_steps = 3
    result = train.run(config, str(tmp_path))
    assert int(result.state.extra["counting"]["updates"]) == 3


def test_two_regimes_that_replace_the_update_are_refused(corpus, tmp_path):
    config = tiny_lm_config(corpus)
    config.local_sgd.inner_steps = 2

    from bigmodels import sharding
    # A GAN-like task (groups updated in turn) with local SGD: two update rules.
    task = type("T", (), {"update_groups": ("a", "b"), "image_outputs": ()})()
    mesh = sharding.make_mesh(config.mesh)
    with pytest.raises(BadInput, match="both replace the update rule"):
        regimes.build(config, task, mesh)


def _named(params):
    return [(jax.tree_util.keystr(p), x)
            for p, x in jax.tree_util.tree_flatten_with_path(params)[0]]

