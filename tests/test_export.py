"""Exports are self-contained and usable: params, config and data files; sampling,
init_from and checkpoint.load accept them; the run's regimes shape what is written;
a failed export leaves nothing at --out."""

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import checkpoint, names, regimes, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.export import export
from bigmodels.regimes.base import Regime
from bigmodels.sample import sample
from helpers import ROOT, experiment_config

HOOK_CALLS = []     # `extra` of each export_params call of the test regime below


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """quickstart:tiny (checkpoints at steps 3 and 6) and its export."""
    workdir = str(tmp_path_factory.mktemp("quickstart"))
    train.run(experiment_config("quickstart", "tiny", sample_at_end=""), workdir)
    return workdir, export(workdir, workdir + "-export")


def _assert_trees_equal(a, b):
    """Same param names, same values bit for bit (as numpy, whatever their sharding)."""
    as_numpy = lambda t: {k: np.asarray(v) for k, v in tree.flatten(t).items()}  # noqa: E731
    chex.assert_trees_all_equal(as_numpy(a), as_numpy(b))


def _size(directory) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(directory, "**"),
                                                     recursive=True) if os.path.isfile(p))


def test_an_export_is_self_contained_and_samples_like_the_run(lm_run):
    workdir, out = lm_run
    for name in (names.CONFIG_FILE, names.TOKENIZER_FILE):
        assert (pathlib.Path(out) / name).read_bytes() == \
            (pathlib.Path(workdir) / name).read_bytes(), name
    _assert_trees_equal(checkpoint.load(out), checkpoint.load(workdir))
    assert _size(out) < 0.5 * _size(os.path.join(workdir, "checkpoints", "6"))  # no Adam moments
    kwargs = dict(prompt="def ", max_new_tokens=12, seed=3, temperature=1.0)
    text = sample(out, **kwargs)
    assert text.startswith("def ") and len(text) == len("def ") + 12    # byte tokenizer
    assert text == sample(workdir, **kwargs)
    assert text != sample(out, **{**kwargs, "seed": 4})                 # the seed is used


def test_the_cli_exports_a_step_and_says_what_it_wrote(lm_run, tmp_path):
    workdir, _ = lm_run
    out = str(tmp_path / "by_step")
    done = subprocess.run([sys.executable, "-m", "bigmodels.export", f"--workdir={workdir}",
                           f"--out={out}", "--step=3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and out in lines[0], done.stdout
    assert " MB, params + config.json, tokenizer.json" in lines[0]
    by_dir = export(os.path.join(workdir, "checkpoints", "3"), str(tmp_path / "by_dir"))
    for out in (out, by_dir):
        _assert_trees_equal(checkpoint.load(out), checkpoint.load(workdir, step=3))
        assert checkpoint.read_config(out).to_dict() == checkpoint.read_config(workdir).to_dict()
    with pytest.raises(BadInput, match="is already an export"):
        export(by_dir, str(tmp_path / "again"))


def test_fine_tuning_from_an_export(lm_run, tmp_path, capsys):
    _, out = lm_run
    # quickstart warms the LR up from 0, so step 1 leaves the params as loaded.
    config = experiment_config("quickstart", "tiny", sample_at_end="", total_steps=1,
                               init_from=out)
    tuned = train.run(config, str(tmp_path))
    assert f"initialised params from {out}" in capsys.readouterr().out
    _assert_trees_equal(tuned.state.params, checkpoint.load(out))


def test_an_export_needs_none_of_the_devices_the_run_had(lm_run, tmp_path):
    workdir, _ = lm_run
    run = tmp_path / "run"
    shutil.copytree(workdir, run)
    config = json.loads((run / names.CONFIG_FILE).read_text())
    config["mesh"].update(data=32, fsdp=2)                  # 64 devices; this host has 8
    (run / names.CONFIG_FILE).write_text(json.dumps(config))
    out = export(str(run), str(tmp_path / "out"))
    _assert_trees_equal(checkpoint.load(out), checkpoint.load(workdir))


def test_an_existing_out_is_refused_and_a_failed_export_leaves_nothing(lm_run, tmp_path,
                                                                        monkeypatch):
    workdir, out = lm_run
    before = {p: os.path.getsize(p) for p in glob.glob(f"{out}/**", recursive=True)}
    with pytest.raises(BadInput, match=f"{out} already exists and is not an empty directory"):
        export(workdir, out)
    assert {p: os.path.getsize(p) for p in glob.glob(f"{out}/**", recursive=True)} == before

    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(workdir, str(empty)) == str(empty)                   # an empty one is used
    assert (empty / names.CONFIG_FILE).exists()

    def killed(*args):
        raise KeyboardInterrupt     # as if killed after the params were written
    monkeypatch.setattr(shutil, "copyfile", killed)
    with pytest.raises(KeyboardInterrupt):
        export(workdir, str(tmp_path / "killed"))
    assert sorted(os.listdir(tmp_path)) == ["empty"]                   # no partial export


def test_sampling_a_run_that_is_not_a_language_model_is_refused(tmp_path):
    workdir = tmp_path / "tabular"
    train.run(experiment_config("tabular_mlp", "tiny", total_steps=1, log_every=1,
                                eval_every=1, ckpt_every=1), str(workdir))
    out = export(str(workdir), str(tmp_path / "export"))
    assert (pathlib.Path(out) / names.PREPROCESS_FILE).read_bytes() == \
        (workdir / names.PREPROCESS_FILE).read_bytes()
    for path in (str(workdir), out):
        with pytest.raises(BadInput) as refused:
            sample(path, "x")
        message = str(refused.value)
        assert "\n" not in message and path in message
        assert "not a causal language model (task=binary_classify, model=mlp)" in message


class Scaling(Regime):
    """Keeps a factor in its own state and exports its params times that factor: a
    stand-in for LoRA merging its adapters."""

    name = "scaling"

    def init_state(self, params):
        return {"factor": jnp.asarray(2.0)}

    def export_params(self, params, extra):
        HOOK_CALLS.append(extra)
        return jax.tree.map(lambda x: extra["factor"] * x, params)


def from_config(config, task, mesh):
    return [Scaling()]


def test_each_regime_shapes_what_an_export_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(regimes, "REGIMES", regimes.REGIMES + (__name__,))
    workdir = str(tmp_path / "run")
    train.run(experiment_config("quickstart", "tiny", sample_at_end="", total_steps=1,
                                ckpt_every=1), workdir)
    HOOK_CALLS.clear()
    out = export(workdir, str(tmp_path / "scaled"))
    assert len(HOOK_CALLS) == 1 and float(HOOK_CALLS[0]["factor"]) == 2.0
    scaled = jax.tree.map(lambda x: 2 * x, checkpoint.load(workdir))
    _assert_trees_equal(checkpoint.load(out), scaled)
