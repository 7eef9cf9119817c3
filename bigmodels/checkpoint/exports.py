"""Exports: a run's params without optimizer or data state, and beside them the files
needed to use them (the resolved config, the tokenizer or preprocessing statistics).

    <out>/_METADATA, d/, ...      the params, an orbax pytree {"params": ...}, with
                                  "model_state" beside them when the run keeps one
                                  (BatchNorm statistics), so an export predicts alone
    <out>/config.json             the run's resolved config, byte for byte
    <out>/tokenizer.json, ...     whichever of names.DATA_FILES the run saved

The export is written into a hidden sibling directory and renamed into place at the
end, so a directory at <out> is always a complete export.
"""

import json
import os
import shutil
import uuid

import ml_collections
import orbax.checkpoint as ocp

from bigmodels.checkpoint import packing
from bigmodels.checkpoint.load import load, metadata, resolve
from bigmodels.errors import BadInput
from bigmodels.names import CONFIG_FILE, DATA_FILES, MODEL_STATE


def is_export(path: str) -> bool:
    """A params export (not a workdir or a step directory)."""
    return os.path.isfile(os.path.join(path, "_METADATA"))


def run_dir(path: str, step: int | None = None) -> str:
    """The directory of the run files behind a workdir, a step directory
    (<run>/checkpoints/<step>) or an export."""
    item = resolve(path, step)
    if os.path.basename(item) == "state":             # <run>/checkpoints/<step>/state
        return os.path.dirname(os.path.dirname(os.path.dirname(item)))
    return item


def read_config(path: str) -> ml_collections.ConfigDict:
    """The resolved config saved with a run or an export at `path`."""
    config_path = os.path.join(path, CONFIG_FILE)
    try:
        with open(config_path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except FileNotFoundError:
        raise BadInput(f"{config_path}: not found; {path} is not a training run or a "
                       f"self-contained export") from None
    except (OSError, ValueError) as e:
        raise BadInput(f"{config_path}: unreadable ({e})") from None


def check_export_out(out_dir: str) -> None:
    if os.path.isdir(out_dir) and not os.listdir(out_dir):
        return                                        # an empty directory is replaced
    if os.path.exists(out_dir):
        raise BadInput(f"export: {out_dir} already exists and is not an empty directory; "
                       f"not overwriting it")


def export_params(path: str, out_dir: str, step: int | None = None, transform=None,
                  run_files: bool = False, config_json: str | None = None,
                  sparse: bool = False) -> str:
    """Writes the params of `path`'s checkpoint to `out_dir` (a new or empty directory)
    and returns its absolute path. `transform` (params -> params) changes them on the
    way (a layer layout, a regime's export hook). `run_files`: also copy the run's
    config and data files, which makes the export self-contained; `config_json` is
    written as its config instead of the run's (a quantized export's). int4 arrays are
    packed two a byte, and with `sparse` every array whose bitmask-and-values form is
    smaller is stored so (checkpoint/packing.py)."""
    out_dir = os.path.abspath(out_dir)
    check_export_out(out_dir)
    files = []
    if run_files:
        source = run_dir(path, step)
        read_config(source)                           # refuse a source without one
        files = [os.path.join(source, n) for n in (CONFIG_FILE,) + DATA_FILES
                 if os.path.isfile(os.path.join(source, n))]
    params = load(path, step)
    if transform is not None:
        params = transform(params)

    params = packing.pack_tree(params, sparse)
    saved = metadata(path, step)
    model_state = (load(path, step, prefix=MODEL_STATE)
                   if any(n.startswith(MODEL_STATE + "/") for n in saved) else None)

    def write(tmp: str) -> None:
        save_params(tmp, params, model_state=model_state)
        for f in files:
            shutil.copyfile(f, os.path.join(tmp, os.path.basename(f)))
        if config_json is not None:
            with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
                f.write(config_json)
    return write_atomically(out_dir, write)


def save_params(directory: str, params, compress: bool = True, model_state=None) -> None:
    """The params as an export's pytree, {"params": params} (and "model_state" when
    given), in `directory` (made first;
    orbax replaces it, so the run files go in after). `compress=False` skips orbax's
    compression, whose buffers for all arrays are in flight at once: with jax arrays,
    a Hugging Face import's peak memory is 1.5x its params, not 2.04x
    (benchmarks/RESULTS.md)."""
    handler = ocp.PyTreeCheckpointHandler(use_compression=compress)
    tree = {"params": params}
    if model_state:
        tree[MODEL_STATE] = model_state
    ocp.Checkpointer(handler).save(directory, ocp.args.PyTreeSave(tree), force=True)


def write_atomically(out_dir: str, write) -> str:
    """Calls `write(tmp)` on a new hidden sibling of `out_dir` (which must not exist or
    be empty), then renames it into place; returns the absolute `out_dir`. A failure or
    a kill leaves no partial `out_dir`."""
    out_dir = os.path.abspath(out_dir)
    check_export_out(out_dir)
    parent, name = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    # Hidden and unique: a killed export leaves only this, never a partial <out>.
    tmp = os.path.join(parent, f".{name}.export-{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(tmp)
        write(tmp)
        check_export_out(out_dir)                           # it may have appeared meanwhile
        try:
            os.replace(tmp, out_dir)
        except OSError as e:
            raise BadInput(f"export: cannot move the export into {out_dir} ({e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
