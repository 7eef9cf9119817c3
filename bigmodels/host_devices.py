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
point (bigmodels.main, including its dry run, and benchmarks/step_time.py) applies it;
bigmodels.main checks the config first (bigmodels.train.validate.check_config: this module
sits below the train package). Tests, notebooks and a user who already set a count
(XLA_FLAGS or jax_num_cpu_devices) keep the devices they have. "Cores" are the CPUs this
process may run on; a container's CPU quota is not seen, so under a quota set
`cpu_devices` to the cores it grants. The split was measured on the CPU only and applies
only where JAX will run on the CPU (`runs_on_cpu`): a GPU or TPU host keeps XLA's CPU
default, and its mesh is the accelerators.
"""

import importlib.metadata
import importlib.util
import os
import pkgutil

import jax

from bigmodels import sharding
from bigmodels.errors import BadInput, require


def usable_count(config, cores: int) -> int:
    """The most devices, up to `cores`, that the config's mesh and batch can use. Local
    SGD keeps one device: its replicas are the data axis, so the core count would change
    the algorithm."""
    if config.local_sgd.inner_steps > 0:
        return 1
    microbatch = config.batch_size // config.grad_accum_steps
    for n in range(cores, 1, -1):
        try:
            sizes = sharding.mesh_shape(config.mesh, n)
        except BadInput:
            continue
        if microbatch % (sizes["data"] * sizes["fsdp"]) == 0:    # the batch splits
            return n
    return 1


def count_already_set() -> bool:
    """Whether the CPU device count was set before us (XLA_FLAGS, jax_num_cpu_devices,
    or an earlier split)."""
    return ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices != -1)


def _accelerator_installed() -> bool:
    """Whether a JAX accelerator backend is installed (a PJRT plugin, as jax-cuda12-plugin,
    or libtpu), found without starting JAX's backends."""
    if importlib.util.find_spec("libtpu") or os.environ.get("PJRT_NAMES_AND_LIBRARY_PATHS"):
        return True
    if importlib.metadata.entry_points(group="jax_plugins"):
        return True
    try:
        import jax_plugins
    except ImportError:
        return False
    return any(True for _ in pkgutil.iter_modules(jax_plugins.__path__))


def runs_on_cpu(platforms: str | None = None) -> bool:
    """Whether JAX will run on the CPU, decided before its backends start: `platforms`
    (default JAX_PLATFORMS, i.e. jax_platforms) names cpu first, or, unset, no
    accelerator is installed. Where a GPU plugin is installed on a host without a GPU,
    set JAX_PLATFORMS=cpu."""
    if platforms is None:
        platforms = jax.config.jax_platforms or ""
    if platforms.strip():
        return platforms.split(",")[0].strip().lower() == "cpu"
    return not _accelerator_installed()


def check_cpu_devices(config) -> None:
    require(config.get("cpu_devices", 1) >= 0,
            f"cpu_devices must be >= 0 (0 = one per core, 1 = one device), got "
            f"{config.get('cpu_devices')}")


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):      # Linux: the CPUs this process may use
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_host_cpus(config) -> int:
    """Sets the CPU device count from `config.cpu_devices` (0: `usable_count` over the
    cores), on a config its caller has checked. Returns the count set, or 0 where it is
    left alone: JAX will not run on the CPU, a count was already set, or JAX's backends
    have already started."""
    check_cpu_devices(config)
    if not runs_on_cpu() or count_already_set():
        return 0
    count = config.cpu_devices or usable_count(config, _cores())
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:      # backends already started (an in-process caller)
        return 0
    return count
