"""The one checkpoint path: orbax, async, keeps the last N, saves the data iterator.

A checkpoint at step s holds the train state after s updates and the grain iterator
positioned at batch s, so resuming from it replays the run exactly.
"""

import os

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iterator, force: bool = False) -> bool:
        return self.manager.save(step, force=force, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator)))

    def restore(self, step: int, abstract_state, data_iterator):
        """Restores into `abstract_state`'s shardings; sets `data_iterator` in place."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored.state

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_with_shardings(abstract_tree, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract_tree, shardings)


def latest_step(workdir: str) -> int | None:
    directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        return None
    with ocp.CheckpointManager(directory) as manager:
        return manager.latest_step()


def load_params(workdir: str, step: int | None = None):
    """The params of a run's latest (or given) checkpoint, as host numpy arrays.

    Works on any topology: nothing about the saving mesh is needed.
    """
    step = latest_step(workdir) if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}")
    state_dir = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR, str(step), "state")
    checkpointer = ocp.PyTreeCheckpointer()
    params_meta = checkpointer.metadata(state_dir).item_metadata["params"]
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), params_meta)
    restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
        item={"params": target},
        restore_args={"params": jax.tree.map(
            lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)},
        partial_restore=True))
    return restored["params"]
