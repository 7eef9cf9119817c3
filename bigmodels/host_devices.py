"""Splitting a CPU host's cores into devices, so that a CPU run trains data-parallel.

XLA:CPU runs one program's kernels one after another, each split over the cores; between
the small kernels of a transformer step the cores wait. Profiled on the 2-core CI machine,
each of the two threads was busy about 30 ms of a 50 ms shakespeare_char step. Split into
one device per core, the same step is a data-parallel program whose per-device halves keep
both cores busy: 37 ms against 52 ms. It does not pay everywhere: the gradient all-reduce
costs a few ms a step, and an LSTM's scan ran 3x slower (benchmarks/RESULTS.md). So one
device stays the default, and an experiment that measured a gain sets `cpu_devices=0`.
The step's result is the same up to float summation order: jit keeps global-batch
semantics on any mesh (local SGD, whose replicas are the data axis, keeps one device).

The device count must be fixed before JAX starts its backends, so only a process's entry
point (bigmodels.main, including its dry run, and benchmarks/step_time.py) applies it.
Tests, notebooks and a user who already set a count (XLA_FLAGS or jax_num_cpu_devices)
keep the devices they have. "Cores" are the CPUs this process may run on; a container's
CPU quota is not seen, so under a quota set `cpu_devices` to the cores it grants. On a GPU
or TPU host the CPU devices exist but the mesh uses the accelerators.
"""

import os

import jax

from bigmodels import sharding
from bigmodels.errors import BadInput
from bigmodels.train.validate import check_batch_split, check_config


def usable_count(config, cores: int) -> int:
    """The most devices, up to `cores`, that the config's mesh and batch can use. Local
    SGD keeps one device: its replicas are the data axis, so the core count would change
    the algorithm."""
    if config.local_sgd.inner_steps > 0:
        return 1
    for n in range(cores, 1, -1):
        try:
            sizes = sharding.mesh_shape(config.mesh, n)
            check_batch_split(config, sizes["data"] * sizes["fsdp"])
        except BadInput:
            continue
        return n
    return 1


def count_already_set() -> bool:
    """Whether the CPU device count was set before us (XLA_FLAGS, jax_num_cpu_devices,
    or an earlier split)."""
    return ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices != -1)


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):      # Linux: the CPUs this process may use
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_host_cpus(config) -> int:
    """Checks the config, then sets the CPU device count from `config.cpu_devices` (0:
    `usable_count` over the cores). Returns the count set, or 0 where it is left alone:
    a count was already set, or JAX's backends have already started."""
    check_config(config)
    if count_already_set():
        return 0
    count = config.cpu_devices or usable_count(config, _cores())
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:      # backends already started (an in-process caller)
        return 0
    return count
