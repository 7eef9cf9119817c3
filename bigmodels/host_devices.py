"""Splitting a CPU host's cores into devices, so that a CPU run trains data-parallel.

XLA:CPU runs one program's kernels one after another, each split over the cores; between
the small kernels of a transformer step the cores wait. Profiled on the 2-core CI machine,
each of the two threads was busy about 30 ms of a 50 ms shakespeare_char step. Split into
one device per core, the same step is a data-parallel program whose per-device halves keep
both cores busy: 37 ms against 52 ms. It does not pay everywhere: the gradient all-reduce
costs a few ms a step, and an LSTM's scan ran 3x slower (benchmarks/RESULTS.md). So one
device stays the default, and an experiment that measured a gain sets `cpu_devices=0`.
The step's result is the same up to float summation order: jit keeps global-batch
semantics on any mesh.

The device count must be fixed before JAX starts its backends, so only a process's entry
point (bigmodels.main, the benchmarks) applies it. Tests, notebooks and a user who already
chose a count (XLA_FLAGS or jax_num_cpu_devices) keep the devices they have.
"""

import os

import jax

from bigmodels import sharding
from bigmodels.errors import BadInput, require
from bigmodels.train.validate import check_batch_split


def usable_count(config, cores: int) -> int:
    """The most devices, up to `cores`, that the config's mesh and batch can use."""
    for n in range(cores, 1, -1):
        try:
            sizes = sharding.mesh_shape(config.mesh, n)
            check_batch_split(config, sizes["data"] * sizes["fsdp"])
        except BadInput:
            continue
        return n
    return 1


def user_chose_count() -> bool:
    return ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices != -1)


def split_host_cpus(config) -> int:
    """Sets the CPU device count from `config.cpu_devices` (0: `usable_count` over the
    cores this process may run on). Returns the count set, or 0 where it is left alone:
    the user chose one, or JAX's backends have already started."""
    require(config.cpu_devices >= 0, f"cpu_devices must be >= 0 (0 = one per core, 1 = "
                                     f"one device), got {config.cpu_devices}")
    if user_chose_count():
        return 0
    count = config.cpu_devices or usable_count(config, len(os.sched_getaffinity(0)))
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:      # backends already started (an in-process caller)
        return 0
    return count
