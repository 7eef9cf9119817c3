"""Checkpoints: the train loop's one save/restore path, and reading them anywhere.

`load(path, ...)` reads params from a workdir, a step directory or a params export
onto any mesh or into numpy; `export_params` writes a params-only copy;
`Checkpointer` is what the train loop uses.
"""

from bigmodels.checkpoint.init_from import init_params
from bigmodels.checkpoint.init_from import plan as plan_init
from bigmodels.checkpoint.load import export_params, latest_step, load, metadata, resolve
from bigmodels.checkpoint.manager import (CHECKPOINT_DIR, COMMIT_MARKER, REJECTED_DIR,
                                          Checkpointer, CheckpointSaveError,
                                          abstract_with_shardings, is_committed)


__all__ = ["CHECKPOINT_DIR", "plan_init", "COMMIT_MARKER", "REJECTED_DIR", "Checkpointer",
           "CheckpointSaveError", "abstract_with_shardings", "export_params", "init_params",
           "is_committed", "latest_step", "load", "metadata", "resolve"]
