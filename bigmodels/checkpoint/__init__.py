"""Checkpoints: the train loop's one save/restore path, and reading them anywhere.

`load(path, ...)` reads params from a workdir, a step directory or an export onto any
mesh or into numpy; `export_params` writes an export (params, and with `run_files`
the run's config and data files); `read_config` reads the config saved with a run or
an export; `Checkpointer` is what the train loop uses.
"""

from bigmodels.checkpoint.init_from import init_params
from bigmodels.checkpoint.init_from import plan as plan_init
from bigmodels.checkpoint.exports import (check_export_out, export_params, is_export,
                                         read_config, run_dir)
from bigmodels.checkpoint.load import latest_step, load, metadata, resolve
from bigmodels.checkpoint.manager import (CHECKPOINT_DIR, COMMIT_MARKER, REJECTED_DIR,
                                          Checkpointer, CheckpointSaveError,
                                          abstract_with_shardings, is_committed)


__all__ = ["CHECKPOINT_DIR", "plan_init", "COMMIT_MARKER", "REJECTED_DIR", "Checkpointer",
           "CheckpointSaveError", "abstract_with_shardings", "export_params", "init_params",
           "is_committed", "is_export", "latest_step", "load", "metadata", "read_config",
           "resolve", "run_dir", "check_export_out"]
