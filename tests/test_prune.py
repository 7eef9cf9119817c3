"""Magnitude pruning (bigmodels/regimes/prune.py, bigmodels/nn/sparsity.py): the schedule,
masks that only shrink, the final sparsity, zeros that stay zero, 2:4, a tiny GPT run
that resumes, and bad input."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigmodels import train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.nn import sparsity
from bigmodels.regimes.prune import PruneSpec, PruneState, magnitude_prune
from helpers import read_metrics, tiny_lm_config

STEPS = 8


def _params():
    rng = np.random.RandomState(0)
    return {"dense": {"kernel": jnp.asarray(rng.randn(16, 12), jnp.float32),
                      "bias": jnp.asarray(rng.randn(12), jnp.float32)},
            "out": {"kernel": jnp.asarray(rng.randn(8, 5), jnp.float32)}}


def _spec(target=0.7, structure=None, begin=0, end=STEPS, every=1):
    return PruneSpec(target, begin, end, every, structure, re.compile("kernel$"))


def _train(spec, steps):
    """`steps` SGD steps of random gradients through magnitude_prune: (params, masks)
    after each step."""
    tx = optax.chain(optax.sgd(0.1), magnitude_prune(spec))
    params = _params()
    state = tx.init(params)
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
        *tx.update(g, s, p)))
    history = []
    for i in range(steps):
        grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(i), x.shape),
                             params)
        params, state = step(params, state, grads)
        history.append((params, state[1].masks))
    return history


def test_schedule_values():
    for step, expected in [(0, 0.0), (2, 1 - 0.5 ** 3), (4, 1.0), (6, 1.0), (-3, 0.0)]:
        got = sparsity.scheduled_sparsity(step, 0.8, begin=0, end=4)
        np.testing.assert_allclose(got, 0.8 * expected, rtol=1e-6)
    np.testing.assert_allclose(sparsity.scheduled_sparsity(13, 0.5, 10, 20),
                               0.5 * (1 - 0.7 ** 3), rtol=1e-6)
    assert float(sparsity.scheduled_sparsity(5, 0.5, 5, 5)) == 0.5     # one shot


def test_masks_shrink_sparsity_reaches_target_and_zeros_stay_zero():
    history = _train(_spec(target=0.7), STEPS + 4)     # 4 more steps after end_step
    previous = None
    for params, masks in history:
        assert isinstance(masks["dense"]["bias"], optax.MaskedNode)   # not matched
        for name in ("dense", "out"):
            mask = np.asarray(masks[name]["kernel"])
            kernel = np.asarray(params[name]["kernel"])
            assert np.all(kernel[~mask] == 0)                          # exactly zero
            if previous is not None:
                assert not np.any(mask & ~previous[name])              # never regrows
        previous = {n: np.asarray(masks[n]["kernel"]) for n in ("dense", "out")}
    # The last mask step is STEPS (the 9th update); after it the masks hold still.
    final_params, final_masks = history[-1]
    for name in ("dense", "out"):
        kernel = np.asarray(final_params[name]["kernel"])
        zeros = np.mean(kernel == 0)
        assert abs(zeros - round(0.7 * kernel.size) / kernel.size) < 1e-9   # per tensor
        np.testing.assert_array_equal(np.asarray(history[STEPS][1][name]["kernel"]),
                                      np.asarray(final_masks[name]["kernel"]))
    assert np.all(np.asarray(final_params["dense"]["bias"]) != 0)     # unmatched


def test_final_sparsity_within_1e_3_of_target():
    spec = _spec(target=0.6)
    tx = magnitude_prune(spec)
    params = {"w": {"kernel": jnp.asarray(np.random.RandomState(1).randn(50, 40))}}
    state = tx.init(params)
    for _ in range(STEPS + 1):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        params = optax.apply_updates(params, updates)
    assert abs(float(jnp.mean(params["w"]["kernel"] == 0)) - 0.6) < 1e-3


def test_two_four_structure_holds():
    history = _train(_spec(structure=(2, 4), begin=2, end=STEPS), STEPS)
    params, masks = history[-1]
    for name in ("dense", "out"):
        kernel = np.asarray(params[name]["kernel"])
        groups = (kernel == 0).reshape(kernel.shape[0] // 4, 4, -1)
        assert np.all(groups.sum(axis=1) == 2), name       # exactly 2 of each 4 kept
    # Before begin_step nothing is pruned.
    assert np.all(np.asarray(history[1][1]["out"]["kernel"]))


def test_n_m_mask_keeps_the_largest():
    w = jnp.asarray([[1.0], [-4.0], [3.0], [0.5], [2.0], [2.5], [-9.0], [0.1]])
    mask = sparsity.n_m_mask(w, jnp.ones(w.shape, bool), 2, 4)
    assert np.asarray(mask).ravel().tolist() == [False, True, True, False,
                                                 False, True, True, False]


def test_a_tiny_gpt_is_pruned_and_resumes(tmp_path, corpus):
    config = tiny_lm_config(corpus, total_steps=4, ckpt_every=2)
    config.prune.update(target=0.5, begin_step=0, end_step=2, every=1)
    workdir = str(tmp_path)
    result = train.run(config, workdir)
    kernels = {n: np.asarray(a) for n, a in tree.flatten(jax.device_get(result.state.params)
                                                         ).items() if n.endswith("kernel")}
    assert kernels
    for name, kernel in kernels.items():
        assert abs(np.mean(kernel == 0) - 0.5) < 0.01, name
    prune_states = [s for s in jax.tree.leaves(result.state.opt_state,
                                               is_leaf=lambda x: isinstance(x, PruneState))
                    if isinstance(s, PruneState)]
    assert prune_states and int(prune_states[0].count) == 4
    # Each mask is sharded like its param (the trainer's default for param-shaped state).
    masks = tree.flatten(prune_states[0].masks)
    params = tree.flatten(result.state.params)
    assert set(masks) == set(kernels)
    for name, mask in masks.items():
        assert mask.dtype == bool and mask.sharding.is_equivalent_to(params[name].sharding,
                                                                      mask.ndim), name
    assert abs(read_metrics(workdir, "train/sparsity")[4] - 0.5) < 0.01
    # Resume to 6 steps: the restored masks keep the pruned weights at zero.
    config.total_steps = 6
    resumed = train.run(config, workdir)
    for name, kernel in tree.flatten(jax.device_get(resumed.state.params)).items():
        if name.endswith("kernel"):
            assert np.all(np.asarray(kernel)[kernels[name] == 0] == 0), name


@pytest.mark.parametrize("key,value,message", [
    ("target", 1.0, r"prune.target must be in \[0, 1\)"),
    ("target", -0.1, r"prune.target must be in \[0, 1\)"),
    ("end_step", 0, r"prune.end_step \(0\) must be >= prune.begin_step \(3\)"),
    ("every", 0, "prune.every must be >= 1"),
    ("structure", "4:2", "prune.structure must be"),
    ("include", "no_such_param", "prune.include: 'no_such_param' matches no param"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, corpus, key, value, message):
    config = tiny_lm_config(corpus, total_steps=4)
    config.prune.update(target=0.5, begin_step=3)
    config.prune[key] = value
    workdir = tmp_path / "run"
    with pytest.raises(BadInput, match=message) as e:
        train.run(config, str(workdir))
    assert "\n" not in str(e.value)
    assert not workdir.exists() or not os.listdir(workdir)


def test_target_one_through_the_cli_exits_2(tmp_path, corpus):
    import subprocess
    import sys
    from conftest import ROOT
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "bigmodels.main",
         "--config=experiments/quickstart.py:tiny", f"--config.data.path={corpus}",
         "--config.prune.target=1.0", f"--workdir={workdir}"],
        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "prune.target must be in [0, 1)" in proc.stderr
    assert not workdir.exists() or not os.listdir(workdir)
