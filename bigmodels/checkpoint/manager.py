"""The one checkpoint path of the train loop: orbax, async, keeps the last N.

A checkpoint at step s holds the train state after s updates and the grain iterator
positioned at batch s, so resuming from it replays the run exactly.

What counts: orbax writes a step into a temporary directory, renames it into place and
then writes `commit_success.txt`. Once a save is confirmed, the loop adds a manifest of
every file's size. Only a step directory with the marker, whose files have the
manifest's sizes (when there is one) and whose metadata reads back, is ever restored.
Anything else (a save cut short by a kill, a truncated copy) is moved to
`<workdir>/checkpoints_rejected/` with a warning and the next older step is tried.
(Orbax's own temporary directories, left by a kill mid-save, are deleted when the
manager starts.) A step that passes these checks but fails to restore stops the run
with the error and moves nothing. A checkpoint that reads fine but does not fit the
config (other shapes or keys) is bad input: nothing is moved and the error lists the
differences.

A background save that fails is never reported as done: `poll()` after every step and
`wait()` raise `CheckpointSaveError` as soon as a finished save lacks its marker.
"""

import dataclasses
import glob
import json
import os
import shutil
import sys

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput, RunFailed, first_line

CHECKPOINT_DIR = "checkpoints"
REJECTED_DIR = "checkpoints_rejected"
COMMIT_MARKER = "commit_success.txt"
MANIFEST = "bigmodels_manifest.json"      # {relative path: size in bytes}


class CheckpointSaveError(RunFailed):
    """A checkpoint save failed; the step it names was not committed."""

    def __init__(self, step: int, reason):
        super().__init__(f"checkpoint save for step {step} failed: {reason}")
        self.step = step


def is_committed(step_dir: str) -> bool:
    return os.path.isfile(os.path.join(step_dir, COMMIT_MARKER))


def _file_sizes(step_dir: str) -> dict:
    sizes = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if not rel.startswith(MANIFEST):       # the manifest and its temp file
                sizes[rel] = os.path.getsize(path)
    return sizes


def write_manifest(step_dir: str) -> None:
    sizes = _file_sizes(step_dir)
    tmp = os.path.join(step_dir, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(sizes, f, indent=0, sort_keys=True)
    os.replace(tmp, os.path.join(step_dir, MANIFEST))


def manifest_problem(step_dir: str) -> str | None:
    """What differs from the step's manifest (a truncated or missing file), if anything.
    A step without a manifest (killed between commit and manifest) is not judged here."""
    path = os.path.join(step_dir, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            expected = json.load(f)
    except ValueError:
        return f"{MANIFEST} is not valid JSON"
    found = _file_sizes(step_dir)
    for rel, size in sorted(expected.items()):
        if rel not in found:
            return f"{rel} is missing"
        if found[rel] != size:
            return f"{rel} has {found[rel]} bytes, the manifest says {size}"
    return None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


# Orbax splits each replicated shard among its replicas, so that every replica writes a
# part ("replica-parallel"). Each part is cut on its device by a `slice` compiled once per
# device and shape: a tiny T5 on 8 CPU devices compiled 104 of them in its first save,
# 2.6 of its 10.5 s. Below 1 MiB per part there is nothing to gain from splitting, so
# such an array is written whole by its first replica; bigger ones are still split.
MIN_BYTES_PER_REPLICA_PART = 1 << 20


_registered = []


def _write_small_arrays_whole() -> None:
    if not _registered:           # once per process: orbax logs every re-registration
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(
                min_slice_bytes_for_replica_parallel=MIN_BYTES_PER_REPLICA_PART), override=True)
        _registered.append(True)


class Checkpointer:
    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
        _write_small_arrays_whole()
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, CHECKPOINT_DIR)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True)    # a kill mid-save leaves a tmp dir behind
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "data"))
        self.pending = None                  # step of the save in flight, if any

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def steps(self) -> list[int]:
        self.manager.reload()
        return list(self.manager.all_steps())

    # --- saving -------------------------------------------------------------------

    def save(self, step: int, state, data_iterator, metadata: dict | None = None) -> None:
        """Starts an async save of `step` (with a small JSON `metadata` dict); raises if
        an earlier save failed."""
        self.poll()
        if self.pending is not None:         # orbax runs one save at a time
            self.wait()
        try:
            self.manager.save(step, force=True, custom_metadata=metadata or {},
                              args=ocp.args.Composite(
                                  state=ocp.args.StandardSave(state),
                                  data=grain.checkpoint.CheckpointSave(data_iterator)))
        except Exception as e:
            raise CheckpointSaveError(step, _first_line(e)) from e
        self.pending = step

    def poll(self) -> int | None:
        """The step whose save has just committed, if any; raises if it failed."""
        if self.pending is None or self.manager.is_saving_in_progress():
            return None
        return self._confirm()

    def wait(self) -> int | None:
        """Blocks until the save in flight is committed; returns its step."""
        if self.pending is None:
            return None
        return self._confirm()

    def _confirm(self) -> int:
        step, self.pending = self.pending, None
        try:
            # Joins orbax's finalize thread (at once if it is done), which re-raises the
            # background error; orbax itself may already have consumed it from
            # check_for_errors, so the marker check below is what decides.
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        except Exception as e:
            raise CheckpointSaveError(step, _first_line(e)) from e
        if not is_committed(self.step_dir(step)):
            raise CheckpointSaveError(step, f"no {COMMIT_MARKER} in {self.step_dir(step)}")
        if jax.process_index() == 0:
            write_manifest(self.step_dir(step))
        return step

    def close(self, quiet: bool = False) -> None:
        """Waits for the save in flight and closes; `quiet` (used while another error
        propagates) swallows a save error instead of replacing that error."""
        try:
            self.wait()
        except Exception:
            if not quiet:
                raise
        finally:
            try:
                self.manager.close()
            except Exception:
                if not quiet:
                    raise

    # --- restoring ------------------------------------------------------------------

    def restore_latest(self, abstract_state, data_iterator):
        """(step, state, metadata) from the newest good checkpoint; (None, None, {}) if
        there is none.

        Sets `data_iterator` to the restored position in place. Raises BadInput, moving
        nothing, if a readable checkpoint does not match `abstract_state`.
        """
        expected = tree.flatten(abstract_state)
        for step in sorted(self.steps(), reverse=True):
            step_dir = self.step_dir(step)
            if not is_committed(step_dir):
                self._set_aside(step, f"no {COMMIT_MARKER} (a save that never finished)")
                continue
            problem = manifest_problem(step_dir)
            if problem:
                self._set_aside(step, f"truncated ({problem})")
                continue
            try:
                on_disk = ocp.PyTreeCheckpointer().metadata(
                    os.path.join(step_dir, "state")).item_metadata
                found = tree.flatten(on_disk)
            except Exception as e:
                on_disk, found, problem = {}, {}, _first_line(e)
            if not found:
                self._set_aside(step, f"unreadable metadata ({problem or 'no arrays'})")
                continue
            diff = tree.shape_diff(expected, found)
            if diff:
                raise BadInput(f"checkpoint {step_dir} does not match the config: {diff}")
            # The step looks intact, so a failure now (out of memory, a flaky network
            # file system) is not proof of corruption: stop and move nothing.
            target, absent = _saved_fields(abstract_state, on_disk)
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target)))
                _restore_iterator(os.path.join(step_dir, "data"), data_iterator)
            except Exception as e:
                raise RunFailed(f"could not restore checkpoint {step_dir}: {_first_line(e)} "
                                f"(move it away to resume from an older step)") from e
            metadata = self.manager.metadata(step).custom_metadata or {}
            state = restored.state
            if absent:
                state = dataclasses.replace(abstract_state, **state)
            return _agreed(step), state, dict(metadata)
        return _agreed(None), None, {}

    def _set_aside(self, step: int, reason: str) -> None:
        """Moves a bad step out of orbax's sight, keeping it for inspection."""
        if jax.process_index() == 0:
            target = os.path.join(self.workdir, REJECTED_DIR, str(step))
            n = 1
            while os.path.exists(target):
                target = os.path.join(self.workdir, REJECTED_DIR, f"{step}.{n}")
                n += 1
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(self.step_dir(step), target)
            warn(f"checkpoint step {step} is not usable: {reason}; moved to {target}")
        self.manager.reload()


def _saved_fields(abstract_state, on_disk) -> tuple:
    """(restore target, absent fields). A checkpoint written before the state gained a
    field that is still empty (e.g. TrainState.extra with no regime state) lacks that
    field: it is restored without it, as a dict of the other fields."""
    if not dataclasses.is_dataclass(abstract_state) or not hasattr(on_disk, "keys"):
        return abstract_state, ()
    fields = [f.name for f in dataclasses.fields(abstract_state)]
    absent = [f for f in fields if f not in on_disk.keys()
              and not jax.tree.leaves(getattr(abstract_state, f))]
    if not absent:
        return abstract_state, ()
    return {f: getattr(abstract_state, f) for f in fields if f not in absent}, absent


def _restore_iterator(data_dir: str, data_iterator) -> None:
    """Sets the grain iterator to its saved position.

    Every process saves `process_<i>-of-<n>.json`. Our iterators' state is the next
    global batch index, the same on every process, so a run resumed on another number
    of processes reads process 0's file when its own does not exist.
    """
    own = os.path.join(data_dir, f"process_{jax.process_index()}-of-{jax.process_count()}.json")
    candidates = [own] if os.path.exists(own) else sorted(
        glob.glob(os.path.join(data_dir, "process_*-of-*.json")))
    if not candidates:
        raise FileNotFoundError(f"no data iterator state in {data_dir}")
    with open(candidates[0]) as f:
        data_iterator.set_state(json.load(f))


def _agreed(step):
    """The restored step, checked to be the same on every process."""
    if jax.process_count() == 1:
        return step
    from jax.experimental import multihost_utils
    steps = multihost_utils.process_allgather(np.array(-1 if step is None else step))
    if len(set(np.asarray(steps).ravel().tolist())) != 1:
        raise RunFailed(f"processes would restore different checkpoint steps: {steps}")
    return step


def abstract_with_shardings(abstract_tree, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract_tree, shardings)
