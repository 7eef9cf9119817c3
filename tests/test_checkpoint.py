"""Checkpoints: restore on any topology, only committed steps count, failed saves
surface, and nothing is ever unpickled. (Exports: tests/test_export.py.)"""

import glob
import os
import pickle
import shutil

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from bigmodels import checkpoint, models, optim, sharding, tasks, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput, RunFailed
from bigmodels.train import state as state_lib
from helpers import read_metrics, tiny_lm_config


def _config(corpus, **top):
    config = tiny_lm_config(corpus, **{"total_steps": 4, "ckpt_every": 2,
                                       "keep_checkpoints": 5, **top})
    config.mesh.update(data=8, fsdp=1, tensor=1)
    return config


@pytest.fixture(scope="module")
def base_run(corpus, tmp_path_factory):
    """A finished 4-step run on mesh (data=8) with checkpoints at steps 2 and 4."""
    workdir = str(tmp_path_factory.mktemp("base"))
    return workdir, train.run(_config(corpus), workdir)


def _assert_trees_equal(a, b):
    """Same param names, same values bit for bit (as numpy, whatever their sharding)."""
    as_numpy = lambda t: {k: np.asarray(v) for k, v in tree.flatten(t).items()}  # noqa: E731
    chex.assert_trees_all_equal(as_numpy(a), as_numpy(b))


def test_restore_on_any_topology(base_run):
    workdir, result = base_run
    # As plain numpy, with nothing about the saving mesh.
    as_numpy = checkpoint.load(workdir)
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(as_numpy))
    _assert_trees_equal(as_numpy, result.state.params)

    # Onto a (data=2, fsdp=4) mesh, each array straight into its new sharding.
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4, "tensor": 1}, jax.devices())
    config = result.config
    tx, _ = optim.build(config.optim, config.total_steps)
    task = tasks.build(config, models.build(config.model))
    _, shardings = state_lib.state_shardings(task, tx, mesh, jax.random.key(0),
                                             result.data.train[0])
    resharded = checkpoint.load(workdir, shardings=shardings.params)
    _assert_trees_equal(resharded, result.state.params)
    for array, wanted in zip(jax.tree.leaves(resharded), jax.tree.leaves(shardings.params)):
        assert array.sharding == wanted
    assert any("fsdp" in str(s.spec) for s in jax.tree.leaves(shardings.params))

    # Onto one CPU device.
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    single = checkpoint.load(workdir, shardings=one)
    _assert_trees_equal(single, result.state.params)
    assert all(x.sharding == one for x in jax.tree.leaves(single))

    # An older step, and the whole state rather than only params.
    whole = checkpoint.load(workdir, step=2, prefix="")
    assert int(whole["step"]) == 2 and "opt_state" in whole


def test_planted_truncated_and_uncommitted_steps_are_set_aside(base_run, corpus, tmp_path,
                                                               capfd):
    source, _ = base_run
    workdir = str(tmp_path / "run")
    shutil.copytree(source, workdir)
    steps = os.path.join(workdir, "checkpoints")
    # Step 6: a committed copy of step 4 whose array files were cut in half.
    shutil.copytree(os.path.join(steps, "4"), os.path.join(steps, "6"))
    for path in glob.glob(os.path.join(steps, "6", "state", "**", "d", "*"), recursive=True):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    # Step 8: a save that never finished (no commit marker).
    shutil.copytree(os.path.join(steps, "4"), os.path.join(steps, "8"))
    os.remove(os.path.join(steps, "8", checkpoint.COMMIT_MARKER))
    assert checkpoint.latest_step(workdir) == 6      # the marker alone cannot tell

    config = _config(corpus, total_steps=6)
    train.run(config, workdir)
    out, err = capfd.readouterr()
    assert "resumed from step 4" in out
    assert "checkpoint step 8 is not usable: no commit_success.txt" in err
    assert "checkpoint step 6 is not usable: truncated" in err
    rejected = sorted(os.listdir(os.path.join(workdir, checkpoint.REJECTED_DIR)))
    assert rejected == ["6", "8"]                    # kept for inspection, not deleted
    # Steps 5 and 6 were redone from step 4 and equal a clean run's.
    clean = str(tmp_path / "clean")
    train.run(config, clean)
    assert read_metrics(workdir) == read_metrics(clean)


def test_a_failed_background_save_stops_the_run(corpus, tmp_path, monkeypatch):
    class FailingFuture:
        def result(self, timeout=None):
            raise OSError("injected write failure")

    handler = ocp.StandardCheckpointHandler
    original = handler.async_save

    async def failing_async_save(self, *args, **kwargs):
        return list(await original(self, *args, **kwargs) or []) + [FailingFuture()]

    monkeypatch.setattr(handler, "async_save", failing_async_save)
    config = _config(corpus, total_steps=6)
    with pytest.raises(checkpoint.CheckpointSaveError,
                       match="step 2 failed: OSError: injected write failure"):
        train.run(config, str(tmp_path))
    assert checkpoint.latest_step(str(tmp_path)) is None   # never reported as saved
    # The loop polls after every step, but these steps take milliseconds while the
    # background thread takes longer to fail; at the latest, the next save (step 4)
    # stops the run before it writes anything.
    assert max(read_metrics(str(tmp_path))) <= 4
    assert not os.path.exists(os.path.join(str(tmp_path), "checkpoints", "4"))


def test_resume_on_another_process_count_finds_the_data_position(base_run, corpus, tmp_path,
                                                                   capsys):
    source, _ = base_run
    workdir = str(tmp_path / "run")
    shutil.copytree(source, workdir)
    step_dir = os.path.join(workdir, "checkpoints", "4")
    os.remove(os.path.join(step_dir, checkpoint.manager.MANIFEST))
    # As if saved by process 1 of 2: this process's own file does not exist.
    data = os.path.join(step_dir, "data")
    os.rename(os.path.join(data, "process_0-of-1.json"), os.path.join(data, "process_1-of-2.json"))
    train.run(_config(corpus, total_steps=6), workdir)
    assert "resumed from step 4" in capsys.readouterr().out
    clean = str(tmp_path / "clean")
    train.run(_config(corpus, total_steps=6), clean)
    assert read_metrics(workdir) == read_metrics(clean)


def test_a_planted_pickle_is_never_executed(base_run, corpus, tmp_path):
    source, _ = base_run
    workdir = str(tmp_path / "run")
    shutil.copytree(source, workdir)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Payload())
    step_dir = os.path.join(workdir, "checkpoints", "4")

    def plant(*names):
        for rel in names:
            with open(os.path.join(step_dir, rel), "wb") as f:
                f.write(payload)

    # Files orbax does not read: every way a user has of reading the step still works.
    plant("evil.pkl", "state/evil.pickle", "data/state.pkl", "state/d/evil.npy")
    os.remove(os.path.join(step_dir, checkpoint.manager.MANIFEST))   # keep step 4 eligible
    train.run(_config(corpus, total_steps=5), workdir)
    checkpoint.load(step_dir)
    checkpoint.export_params(step_dir, str(tmp_path / "export"))
    train.run(_config(corpus, total_steps=1, init_from=step_dir), str(tmp_path / "tuned"))
    # `state/checkpoint` is the name of orbax's legacy single-file format: it is parsed
    # as msgpack, which refuses the pickle bytes; nothing is executed either way.
    step_dir = os.path.join(workdir, "checkpoints", "5")           # the latest step
    plant("state/checkpoint")
    with pytest.raises(RunFailed, match="could not restore checkpoint"):
        train.run(_config(corpus, total_steps=6), workdir)
    with pytest.raises(BadInput, match="unreadable"):
        checkpoint.load(step_dir)
    assert not marker.exists()


class _Position:
    """A data iterator stand-in: grain's handler saves `get_state()`, restore sets it."""

    def __init__(self, state):
        self.state = state

    def get_state(self):
        import json
        return json.dumps(self.state).encode()

    def set_state(self, state):
        self.state = state


def test_a_checkpoint_from_before_the_regime_state_restores(tmp_path):
    """Runs saved before TrainState gained `extra` (a dict of regime states) resume."""
    params = {"w": np.arange(4, dtype=np.float32)}
    old = {"step": np.int32(3), "params": params, "opt_state": (), "model_state": {}}
    saver = checkpoint.Checkpointer(str(tmp_path))
    saver.save(3, old, _Position({"next_index": 3}))
    saver.close()
    abstract = state_lib.TrainState(step=jax.ShapeDtypeStruct((), np.int32),
                                    params={"w": jax.ShapeDtypeStruct((4,), np.float32)},
                                    opt_state=(), model_state={})
    position = _Position({})
    step, state, _ = checkpoint.Checkpointer(str(tmp_path)).restore_latest(abstract, position)
    assert step == 3 and state.extra == {} and position.state == {"next_index": 3}
    np.testing.assert_array_equal(np.asarray(state.params["w"]), params["w"])
