"""A dry run: compile the train step ahead of time for a target mesh and report its
memory, without creating any state or training.

    python -m bigmodels.main --config=experiments/gpt2_124m.py --workdir=/tmp/x \\
        --dry_run --target_devices=64 --config.mesh.fsdp=8 [--device_memory_gb=80]

`--target_devices=N` compiles for N fake CPU devices on this machine (the layout and the
per-device sizes of params, optimizer state and batches are the target's; the compiler's
temporary memory is XLA:CPU's estimate, a guide for the accelerator's). The report:

- per device: arguments (state + batch), outputs, temporaries and code, from
  `compiled.memory_analysis()`, and their total (the donated state is counted once);
- every parameter's shape, partition spec and bytes per device, and the optimizer state
  by kind;
- the fraction of param + optimizer bytes that every device holds a full copy of.

Exits 1 if the total exceeds `--device_memory_gb`.
"""

import dataclasses
import math
import tempfile

import jax
import numpy as np

from bigmodels.checkpoint.tree import path_name
from bigmodels.errors import RunFailed
from bigmodels.train import setup as setup_lib

GIB = 2**30


@dataclasses.dataclass
class Leaf:
    name: str
    shape: tuple
    spec: str
    global_bytes: int
    device_bytes: int

    @property
    def replicated(self) -> bool:
        return self.global_bytes > 0 and self.device_bytes == self.global_bytes


@dataclasses.dataclass
class Report:
    devices: int
    mesh: dict
    memory: dict              # name -> bytes per device
    params: list              # [Leaf]
    opt_state: list           # [Leaf]

    @property
    def total_bytes(self) -> int:
        return self.memory["total"]

    def replicated_fraction(self) -> float:
        leaves = self.params + self.opt_state
        total = sum(leaf.global_bytes for leaf in leaves)
        return sum(leaf.global_bytes for leaf in leaves if leaf.replicated) / max(total, 1)


def _leaves(tree, shardings, prefix: str = "") -> list[Leaf]:
    out = []
    flat = jax.tree_util.tree_leaves_with_path(tree)
    flat_shardings = jax.tree.leaves(shardings)
    for (path, leaf), s in zip(flat, flat_shardings, strict=True):
        itemsize = np.dtype(leaf.dtype).itemsize
        shard = s.shard_shape(leaf.shape)
        out.append(Leaf(prefix + path_name(path), tuple(leaf.shape),
                        str(tuple(s.spec)) if hasattr(s, "spec") else str(s),
                        math.prod(leaf.shape) * itemsize, math.prod(shard) * itemsize))
    return out


def _memory(compiled) -> dict:
    analysis = compiled.memory_analysis()
    sizes = {name: int(getattr(analysis, f"{name}_size_in_bytes", 0) or 0)
             for name in ("argument", "output", "alias", "temp", "generated_code")}
    # Donated state: its outputs alias its arguments, so they are counted once.
    sizes["total"] = (sizes["argument"] + sizes["output"] - sizes["alias"] + sizes["temp"]
                      + sizes["generated_code"])
    return sizes


def plan(config) -> Report:
    """Compiles the train step for the current devices (real or fake) and reports."""
    with tempfile.TemporaryDirectory() as workdir:
        built = setup_lib.build(config, workdir)
    abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        built.abstract, built.shardings)
    processes = jax.process_count()
    batch = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct((x.shape[0] * processes,) + x.shape[1:], x.dtype,
                                          sharding=s),
        built.example, built.batch_shardings)
    compiled = built.jit_train_step().lower(abstract_state, batch).compile()
    return Report(devices=built.mesh.size, mesh=dict(built.mesh.shape),
                  memory=_memory(compiled),
                  params=_leaves(built.abstract.params, built.shardings.params),
                  opt_state=_leaves(built.abstract.opt_state, built.shardings.opt_state,
                                    "opt_state/"))


def _state_kind(name: str, param_names: set) -> str:
    """"opt_state/1/0/mu/block_0/mlp/wi/kernel" -> "opt_state/1/0/mu": the path up to
    the param it belongs to (the whole name for scalars such as step counts)."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[i:]) in param_names:
            return "/".join(parts[:i])
    return name


def _mib(n: int) -> str:
    return f"{n / 2**20:10.2f}"


def format_report(report: Report) -> str:
    mesh = " x ".join(f"{k}={v}" for k, v in report.mesh.items())
    lines = [f"dry run: {report.devices} devices, mesh {mesh}", "",
             "per-device memory of one train step (MiB):"]
    for name in ("argument", "output", "alias", "temp", "generated_code", "total"):
        lines.append(f"  {name:<15}{_mib(report.memory[name])}")
    lines += ["", f"{'param':<48} {'shape':<18} {'partition spec':<34} {'MiB/device':>10}"]
    for leaf in report.params:
        lines.append(f"{leaf.name:<48} {str(leaf.shape):<18} {leaf.spec:<34} "
                     f"{_mib(leaf.device_bytes)}")
    kinds = {}
    param_names = {leaf.name for leaf in report.params}
    for leaf in report.opt_state:
        kind = _state_kind(leaf.name, param_names)
        g, d = kinds.get(kind, (0, 0))
        kinds[kind] = (g + leaf.global_bytes, d + leaf.device_bytes)
    lines += ["", "optimizer state (MiB): global, per device"]
    for kind, (g, d) in kinds.items():
        lines.append(f"  {kind:<46}{_mib(g)} {_mib(d)}")
    params = sum(leaf.global_bytes for leaf in report.params)
    per_device = sum(leaf.device_bytes for leaf in report.params + report.opt_state)
    everything = sum(leaf.global_bytes for leaf in report.params + report.opt_state)
    lines += ["", f"params: {params / 2**20:.2f} MiB; params + optimizer state: "
                  f"{everything / 2**20:.2f} MiB in all, {per_device / 2**20:.2f} MiB per "
                  f"device ({per_device / max(everything, 1):.3f} of it)",
              f"replicated: {report.replicated_fraction():.4%} of param + optimizer bytes "
              f"are held whole by every device",
              f"estimated peak per device: {report.total_bytes / GIB:.3f} GiB"]
    return "\n".join(lines)


def run(config, device_memory_gb: float = 0.0) -> Report:
    """Prints the report; RunFailed if the estimate exceeds `device_memory_gb`."""
    report = plan(config)
    print(format_report(report), flush=True)
    if device_memory_gb > 0 and report.total_bytes > device_memory_gb * GIB:
        raise RunFailed(f"dry run: an estimated {report.total_bytes / GIB:.2f} GiB per device "
                        f"exceeds --device_memory_gb={device_memory_gb:g}")
    return report
