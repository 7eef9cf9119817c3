"""Multi-process runs on JAX's own multi-controller runtime (`jax.distributed`).

One process runs per host (per GPU node, per TPU VM worker); together they see every
device, and the one train step, jitted over the global mesh, runs as a single SPMD
program. `config.distributed.coordinator` picks how the processes find each other:

    "auto"        (default) join a cluster when the environment shows one: a SLURM
                  job step with more than one task, or a multi-host TPU slice; JAX
                  reads the addresses and ranks from there. Otherwise: one process.
    "cluster"     always join the cluster the environment describes (the launchers in
                  launch/ pass this); JAX detects SLURM, Cloud TPU and others.
    "none"        always one process.
    "host:port"   an explicit coordinator (process 0 listens there), with
                  `num_processes` and `process_id` given (launch/local.sh).

On CPU, cross-process collectives go through gloo (tests and launch/local.sh).
"""

import os
import sys

import jax

from bigmodels.errors import BadInput, RunFailed


def _slurm_tasks() -> int:
    if "SLURM_JOB_ID" not in os.environ:
        return 0
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def _tpu_pod() -> bool:
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts or "MEGASCALE_COORDINATOR_ADDRESS" in os.environ


def detected_cluster() -> str:
    """"slurm", "tpu" or "" (no multi-process cluster in the environment)."""
    if _slurm_tasks() > 1:
        return "slurm"
    return "tpu" if _tpu_pod() else ""


def _use_gloo_on_cpu() -> None:
    """CPU devices talk across processes through gloo (only the CPU backend reads
    this; GPUs use NCCL and TPUs their interconnect either way)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")


def _quiet_gloo() -> None:
    """Gloo's C++ threads print "[Gloo] Rank N is connected to ..." on file descriptor 1
    for every connection, more than half of a small run's output, and interleave it
    mid-line with ours, so no line filter can remove it. On the CPU backend, Python's
    stdout keeps the original stream on a copy of the descriptor and descriptor 1 itself
    goes to /dev/null (native code's errors go to stderr, untouched)."""
    if jax.default_backend() != "cpu":
        return
    sys.stdout.flush()
    original = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = os.fdopen(original, "w", buffering=1, encoding=sys.stdout.encoding,
                           errors=sys.stdout.errors)


def initialize(cfg) -> bool:
    """Starts jax.distributed as `cfg` (config.distributed) says; True if this is a
    multi-process run. Call it once, before anything touches a device."""
    coordinator = cfg.coordinator.strip()
    if coordinator == "none":
        return False
    if coordinator in ("auto", "cluster"):
        cluster = detected_cluster() or ("the environment's" if coordinator == "cluster" else "")
        if not cluster:
            return False
        _use_gloo_on_cpu()
        try:
            jax.distributed.initialize()          # addresses and ranks from the cluster
        except Exception as e:
            raise RunFailed(f"distributed: joining the {cluster} cluster failed: "
                            f"{type(e).__name__}: {e}") from e
        _quiet_gloo()
        return True
    if ":" not in coordinator:
        raise BadInput(f"distributed.coordinator: expected auto, cluster, none or host:port, "
                       f"got {coordinator!r}")
    if cfg.num_processes < 1 or not 0 <= cfg.process_id < cfg.num_processes:
        raise BadInput(f"distributed: an explicit coordinator needs num_processes >= 1 "
                       f"and 0 <= process_id < num_processes (got {cfg.num_processes}, "
                       f"{cfg.process_id})")
    _use_gloo_on_cpu()
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=cfg.num_processes, process_id=cfg.process_id,
                               initialization_timeout=cfg.timeout_s)
    _quiet_gloo()
    return True


def check_processes(mesh_devices: int) -> None:
    """Every process has a distinct index, all hold the same number of devices, and
    the mesh uses every device: a launcher that started two copies of one rank, or a
    host with a GPU missing, fails here at once instead of hanging in a collective."""
    n = jax.process_count()
    if mesh_devices != jax.device_count():
        raise BadInput(f"mesh: covers {mesh_devices} devices, but the {n} process(es) "
                       f"hold {jax.device_count()}")
    if n == 1:
        return
    import numpy as np
    from jax.experimental import multihost_utils
    mine = np.array([jax.process_index(), jax.local_device_count()], np.int64)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(n, 2)
    if sorted(every[:, 0].tolist()) != list(range(n)):
        raise RunFailed(f"distributed: process indices {every[:, 0].tolist()} are not "
                        f"0..{n - 1} once each")
    if len(set(every[:, 1].tolist())) != 1:
        raise RunFailed(f"distributed: processes hold different device counts "
                        f"{every[:, 1].tolist()}")
