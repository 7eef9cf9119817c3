"""Train any experiment:

    python -m bigmodels.main --config=experiments/<name>.py --workdir=<dir> [--config.<key>=<value> ...]

Overrides are strict: an unknown key or a value of the wrong type exits with code 2.
"""

import os

from absl import flags, logging
from ml_collections import config_flags

from bigmodels.cli import fail, run_main
from bigmodels.preemption import SigtermWatch

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")


def _load_config():
    path = flags.FLAGS["config"].config_filename if flags.FLAGS["config"].present else None
    if not path:
        fail("--config: no experiment file given (--config=experiments/<name>.py)")
    file_part = path.split(":")[0]
    if not os.path.isfile(file_part):
        fail(f"--config: no such file {file_part!r}")
    try:
        config = _CONFIG.value
        config.get("total_steps")   # an unloadable file only fails on first access
    except Exception as e:
        fail(f"--config {path}: {type(e).__name__}: {e}")
    return config


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    # Orbax and TFDS log at every level, even tracebacks of errors we report ourselves in
    # one line (bigmodels.cli); our own messages are printed, not logged.
    logging.set_verbosity(logging.FATAL)
    config = _load_config()
    if not _WORKDIR.value:
        fail("--workdir: no workdir given")
    # SIGTERM from here on exits with EXIT_PREEMPTED, even during the heavy imports.
    with SigtermWatch(_WORKDIR.value):
        from bigmodels import distributed, train    # heavy imports after the cheap checks
        distributed.initialize(config.distributed)  # before anything touches a device
        train.run(config, _WORKDIR.value)


if __name__ == "__main__":
    run_main(main)
