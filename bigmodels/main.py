"""Train any experiment:

    python -m bigmodels.main --config=experiments/<name>.py --workdir=<dir> [--config.<key>=<value> ...]

Overrides are strict: an unknown key or a value of the wrong type exits with code 2.
SIGTERM saves the last finished step and exits with 75; Ctrl-C does the same with 130
(bigmodels/preemption.py).

`--config.init_from=hf:<dir | hub id>` starts from a Hugging Face checkpoint, converted
once into a cache (bigmodels/convert/init_from.py).

`--dry_run [--target_devices=N] [--device_memory_gb=G]` compiles the train step for the
mesh instead of training and prints its memory and sharding (bigmodels/dry_run.py).
"""

import os

from absl import flags, logging
from ml_collections import config_flags

from bigmodels.cli import config_error, fail, run_main
from bigmodels.preemption import StopSignals

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Compile the train step for the mesh and "
                             "report memory and sharding; do not train.")
_TARGET_DEVICES = flags.DEFINE_integer("target_devices", 0, "Dry run: compile for this "
                                       "many fake CPU devices (0 = the devices present).")
_DEVICE_MEMORY_GB = flags.DEFINE_float("device_memory_gb", 0.0, "Dry run: exit 1 if the "
                                       "estimate per device exceeds this (0 = no limit).")


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
        fail(config_error(path, e))
    return config


def main(argv):
    # Orbax and TFDS log at every level, even tracebacks of errors we report ourselves in
    # one line (bigmodels.cli); our own messages are printed, not logged.
    logging.set_verbosity(logging.FATAL)
    config = _load_config()
    if _DRY_RUN.value:
        _dry_run(config)
        return
    if _TARGET_DEVICES.value or _DEVICE_MEMORY_GB.value:
        fail("--target_devices and --device_memory_gb only apply with --dry_run")
    if not _WORKDIR.value:
        fail("--workdir: no workdir given")
    # SIGTERM (exit 75) and Ctrl-C (exit 130) from here on stop with one line, even
    # during the heavy imports.
    with StopSignals(_WORKDIR.value):
        # Heavy imports after the cheap checks; both calls before anything touches a device.
        from bigmodels import distributed, host_devices, train
        from bigmodels.train.validate import check_config
        check_config(config)
        if not distributed.initialize(config.distributed):
            host_devices.split_host_cpus(config)
        from bigmodels.convert import init_from
        train.run(init_from.resolve(config), _WORKDIR.value)


def _dry_run(config):
    if _TARGET_DEVICES.value < 0:
        fail(f"--target_devices must be >= 0, got {_TARGET_DEVICES.value}")
    import jax
    from bigmodels import host_devices
    from bigmodels.train.validate import check_config
    check_config(config)        # touches no device, so the fake ones below can still be set
    from bigmodels.convert import init_from
    config, _ = init_from.with_architecture(config)     # the checkpoint's model, no weights
    if not _TARGET_DEVICES.value:
        host_devices.split_host_cpus(config)    # the devices training would get
    else:
        # Before any backend exists: N fake CPU devices stand in for the target's.
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", _TARGET_DEVICES.value)
        os.environ["XLA_FLAGS"] = " ".join(
            f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count"))
    from bigmodels import dry_run
    dry_run.run(config, _DEVICE_MEMORY_GB.value)


if __name__ == "__main__":
    run_main(main)
