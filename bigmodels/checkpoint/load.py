"""Reading checkpoints outside the train loop, on any topology.

    params = bigmodels.checkpoint.load("runs/gpt")                   # host numpy arrays
    params = bigmodels.checkpoint.load("runs/gpt", shardings=tree)   # onto any mesh

Nothing about the saving mesh is needed: orbax stores global arrays, and each one is
read straight into the requested sharding (or into numpy). Only array data and JSON
metadata are read; nothing is unpickled.
"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from bigmodels.checkpoint import packing, tree
from bigmodels.checkpoint.manager import (CHECKPOINT_DIR, COMMIT_MARKER, is_committed,
                                          manifest_problem, warn)
from bigmodels.errors import BadInput


def committed_steps(checkpoints_dir: str) -> list[int]:
    if not os.path.isdir(checkpoints_dir):
        return []
    return sorted(int(name) for name in os.listdir(checkpoints_dir)
                  if name.isdigit() and is_committed(os.path.join(checkpoints_dir, name)))


def latest_step(workdir: str) -> int | None:
    """The newest committed step in `workdir`, or None."""
    steps = committed_steps(os.path.join(workdir, CHECKPOINT_DIR))
    return steps[-1] if steps else None


def resolve(path: str, step: int | None = None) -> str:
    """The pytree directory behind `path`: a workdir (its latest committed step, or
    `step`), one step directory of it, or a params export."""
    path = os.path.abspath(path)
    checkpoints = os.path.join(path, CHECKPOINT_DIR)
    if os.path.isdir(checkpoints):
        # Committed steps whose files still match their manifest, newest first.
        good = [s for s in reversed(committed_steps(checkpoints))
                if not manifest_problem(os.path.join(checkpoints, str(s)))]
        if step is None and good:
            step = good[0]
            newer = [s for s in committed_steps(checkpoints) if s > step]
            if newer:
                warn(f"checkpoint: skipping damaged step(s) {newer} in {checkpoints}; "
                     f"using step {step}")
        if step is None or step not in good:
            wanted = "any intact committed step" if step is None else f"intact committed step {step}"
            raise BadInput(f"checkpoint: {checkpoints} holds no {wanted} "
                           f"(intact: {sorted(good) or 'none'})")
        return os.path.join(checkpoints, str(step), "state")
    if step is not None:
        raise BadInput(f"checkpoint: a step was given, but {path} is not a workdir")
    if os.path.isdir(os.path.join(path, "state")):
        problem = (None if is_committed(path) else f"no {COMMIT_MARKER}") or manifest_problem(path)
        if problem:
            raise BadInput(f"checkpoint: {path} is not a usable step ({problem})")
        return os.path.join(path, "state")
    if os.path.isfile(os.path.join(path, "_METADATA")):
        return path
    raise BadInput(f"checkpoint: no checkpoint at {path!r} (expected a workdir, a step "
                   f"directory or a params export)")


def metadata(path: str, step: int | None = None) -> dict:
    """{name: metadata with .shape and .dtype} of every array under `path`."""
    item = resolve(path, step)
    try:
        return tree.flatten(ocp.PyTreeCheckpointer().metadata(item).item_metadata)
    except Exception as e:
        raise BadInput(f"checkpoint: unreadable metadata in {item}: {e}") from e


def restore_flat(path: str, names, step: int | None = None, shardings=None) -> dict:
    """{name: array} for the given names. `shardings` is None (numpy), one Sharding
    for all, or a {name: Sharding} dict."""
    item = resolve(path, step)
    meta = metadata(path, step)
    names = list(names)
    missing = [n for n in names if n not in meta]
    if missing:
        raise BadInput(f"checkpoint {item}: no arrays named {tree.listed(missing)}")

    def restore_args(name):
        s = shardings.get(name) if isinstance(shardings, dict) else shardings
        if s is None:
            return ocp.RestoreArgs(restore_type=np.ndarray)
        return ocp.ArrayRestoreArgs(sharding=s, global_shape=tuple(meta[name].shape))

    try:
        restored = _restore(item, meta, names, restore_args)
    except Exception as e:
        raise BadInput(f"checkpoint {item}: unreadable ({type(e).__name__}: "
                       f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e
    return tree.flatten(restored)


def _restore(item, meta, names, restore_args):
    checkpointer = ocp.PyTreeCheckpointer()
    if set(names) == set(meta):
        # Everything: keep the saved containers (lists, tuples) as they are.
        saved = checkpointer.metadata(item).item_metadata
        restored = checkpointer.restore(item, args=ocp.args.PyTreeRestore(
            item=saved, restore_args=jax.tree_util.tree_map_with_path(
                lambda path, _: restore_args(tree.path_name(path)), saved)))
    else:
        # A subtree of nested dicts (params): read only those arrays.
        target = tree.unflatten({n: np.zeros((), meta[n].dtype) for n in names})
        args = tree.unflatten({n: restore_args(n) for n in names})
        restored = checkpointer.restore(item, args=ocp.args.PyTreeRestore(
            item=target, restore_args=args, partial_restore=True))
    return restored


def load(path: str, step: int | None = None, shardings=None, prefix: str = "params"):
    """The `prefix` subtree ("params" by default; "" for the whole saved state) of a
    checkpoint as nested dicts.

    `path` is a workdir, a step directory or a params export. `shardings`: None gives
    host numpy arrays; one `jax.sharding.Sharding` puts every array on it; a pytree of
    shardings shaped like the result puts each array on its own. Packed arrays (int4,
    sparse: checkpoint/packing.py) come back unpacked.
    """
    meta = metadata(path, step)
    head = prefix + "/" if prefix else ""
    names = [n for n in meta if n.startswith(head)]
    if not names:
        raise BadInput(f"checkpoint {resolve(path, step)}: nothing under {prefix!r}")
    if packing.has_packed(names):
        # Unpacked on the host, then placed: the files do not hold the arrays' shapes.
        flat = restore_flat(path, names, step)
        arrays = packing.unpack_tree(tree.unflatten({n[len(head):]: a for n, a in flat.items()}))
        if shardings is None:
            return arrays
        if isinstance(shardings, jax.sharding.Sharding):
            return jax.tree.map(lambda a: jax.device_put(a, shardings), arrays)
        try:
            return jax.tree.map(jax.device_put, arrays, shardings)
        except ValueError as e:
            raise BadInput(f"checkpoint: shardings do not match the checkpoint's arrays: "
                           f"{e}") from None
    if shardings is not None and not isinstance(shardings, jax.sharding.Sharding):
        flat = tree.flatten(shardings)
        shardings = {head + n: s for n, s in flat.items()}
        unknown = set(shardings) ^ set(names)
        if unknown:
            raise BadInput(f"checkpoint: shardings do not match the checkpoint's arrays: "
                           f"{tree.listed(unknown)}")
    flat = restore_flat(path, names, step, shardings)
    return tree.unflatten({n[len(head):]: a for n, a in flat.items()})

