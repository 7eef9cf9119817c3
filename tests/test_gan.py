"""The GAN: alternating updates that leave the other group bit-unchanged, per-group
optimizers, the Fréchet distance, exact resume with BatchNorm state, and a score that
falls over training."""

import dataclasses
import os
import shutil

import jax
import numpy as np
import pytest

from bigmodels import data as data_lib, models, optim, sharding, tasks, train
from bigmodels.errors import BadInput
from bigmodels.metrics import frechet
from bigmodels.train import state as state_lib
from bigmodels.train.step import make_train_step
from helpers import experiment_config, read_metrics

pytest.importorskip("sklearn")


def _setup(tmp_path, update_groups=None):
    """(task, tx, schedule, state, batch) of the tiny digits GAN on 8 devices."""
    config = experiment_config("digits_gan", fid_classifier="")
    data = data_lib.build(config, str(tmp_path))
    task = tasks.build(config, models.build(config.model), data)
    if update_groups is not None:
        task = dataclasses.replace(task, update_groups=update_groups)
    mesh = sharding.make_mesh(config.mesh)
    rng, example = jax.random.key(0), data.train[0]
    tx, schedule = optim.build(config.optim, 10, ("discriminator", "generator"),
                               state_lib.abstract_params(task, rng, example))
    _, shardings = state_lib.state_shardings(task, tx, mesh, rng, example)
    state = state_lib.init_state(task, tx, rng, example, shardings)
    return task, tx, schedule, state, sharding.global_batch(example, mesh)


def _equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _group_state(state, group):
    return (state.params[group], state.opt_state.inner_states[group],
            state.model_state.get("batch_stats", {}).get(group, {}))


@pytest.mark.parametrize("moved,kept", [("generator", "discriminator"),
                                        ("discriminator", "generator")])
def test_an_update_leaves_the_other_group_bit_unchanged(tmp_path, moved, kept):
    task, tx, schedule, state, batch = _setup(tmp_path, update_groups=(moved,))
    before = jax.device_get(state)
    after, metrics = jax.jit(make_train_step(task, tx, schedule, seed=0))(state, batch)
    after = jax.device_get(after)
    assert bool(metrics["finite"])
    assert _equal(_group_state(after, kept), _group_state(before, kept))
    assert not _equal(after.params[moved], before.params[moved])
    assert not _equal(after.opt_state.inner_states[moved], before.opt_state.inner_states[moved])
    if moved == "generator":       # BatchNorm statistics move only in the generator's update
        assert not _equal(after.model_state, before.model_state)


def test_each_group_has_its_own_optimizer(tmp_path):
    config = experiment_config("digits_gan", fid_classifier="")
    config.optim.groups.discriminator.lr = 0.0
    data = data_lib.build(config, str(tmp_path))
    task = tasks.build(config, models.build(config.model), data)
    params = jax.device_get(state_lib.abstract_params(task, jax.random.key(0), data.train[0]))
    tx, _ = optim.build(config.optim, 10, task.update_groups, params)
    params = task.init(jax.random.key(0), data.train[0])["params"]
    grads = jax.tree.map(np.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert all(np.all(u == 0) for u in jax.tree.leaves(updates["discriminator"]))
    assert all(np.all(u != 0) for u in jax.tree.leaves(updates["generator"]))


def test_optimizer_groups_must_be_the_top_level_modules():
    config = experiment_config("digits_gan", fid_classifier="")
    params = {"generator": {"w": np.zeros(2)}, "discriminator": {"w": np.zeros(2)}}
    config.optim.groups.critic = {"lr": 1.0}
    with pytest.raises(BadInput, match="top-level modules"):
        optim.build(config.optim, 10, ("discriminator", "generator"), params)
    del config.optim.groups["critic"]
    config.optim.groups.generator.learning_rate = 1.0
    with pytest.raises(BadInput, match="optim.groups.generator.learning_rate"):
        optim.build(config.optim, 10, ("discriminator", "generator"), params)


def test_frechet_distance_matches_the_textbook_formula():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 1.0
    stats = []
    for x in (a, b):
        total, outer, n = frechet.feature_sums(x, np.ones(len(x)))
        mean, cov = frechet.moments(total, outer, float(n))
        np.testing.assert_allclose(mean, x.mean(0), rtol=1e-10)
        np.testing.assert_allclose(cov, np.cov(x.T), rtol=1e-8, atol=1e-12)
        stats.append((mean, cov))
    (m1, c1), (m2, c2) = stats
    textbook = (np.sum((m1 - m2) ** 2) + np.trace(c1 + c2)
                - 2 * np.trace(np.real(scipy_linalg.sqrtm(c1 @ c2))))
    assert np.isclose(frechet.frechet_distance(m1, c1, m2, c2), textbook, rtol=1e-8)
    assert abs(frechet.frechet_distance(m1, c1, m1, c1)) < 1e-9
    # Fewer rows than features: a singular covariance still gives a finite distance.
    few = rng.normal(size=(4, 6))
    mean, cov = frechet.moments(*frechet.feature_sums(few, np.ones(4))[:2], 4.0)
    assert np.isfinite(frechet.frechet_distance(mean, cov, m2, c2))


def test_gan_resumes_exactly_with_its_batchnorm_state(tmp_path):
    config = experiment_config("digits_gan", fid_classifier="", total_steps=6, ckpt_every=3)
    full = train.run(config, str(tmp_path / "full"))
    assert full.state.model_state["batch_stats"]["generator"]
    # The same run, stopped after its step-3 checkpoint.
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "6")
    resumed = train.run(config, str(tmp_path / "resumed"))
    assert _equal(resumed.state, full.state)
    assert read_metrics(str(tmp_path / "resumed")) == read_metrics(str(tmp_path / "full"))


@pytest.mark.slow
def test_fid_in_trained_cnn_features_falls_and_samples_are_written(tmp_path):
    cnn = experiment_config("digits_cnn", "", total_steps=300, eval_every=300, ckpt_every=300,
                            batch_size=32)
    train.run(cnn, str(tmp_path / "cnn"))
    gan = experiment_config("digits_gan", "", fid_classifier=str(tmp_path / "cnn"),
                            total_steps=600, eval_every=150, ckpt_every=600, batch_size=32)
    gan.model.update(latent_dim=16, generator_channels=(64, 32),
                     discriminator_channels=(32, 64))
    train.run(gan, str(tmp_path / "gan"))
    fid = read_metrics(str(tmp_path / "gan"), "eval/fid")
    assert sorted(fid) == [150, 300, 450, 600]
    assert fid[600] < 0.6 * fid[150], fid      # measured: 87.9 -> 36.9
    images = os.listdir(tmp_path / "gan" / "images")
    assert sorted(images) == [f"samples_{s:06d}.png" for s in (150, 300, 450, 600)]


def test_a_missing_fid_classifier_is_bad_input(tmp_path):
    config = experiment_config("digits_gan", fid_classifier=str(tmp_path / "nothing"))
    with pytest.raises(BadInput, match="fid_classifier: .*config.json not found"):
        train.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
