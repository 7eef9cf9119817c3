"""Per-device memory of an experiment's train step on several target meshes, from the
dry run (one subprocess per mesh: the fake device count is fixed per process).

    python benchmarks/memory_table.py --config=experiments/gpt2_124m.py \\
        --meshes=8:8,1,1 --meshes=8:1,8,1 --meshes=64:8,8,1 --meshes=64:1,64,1

Each --meshes is devices:data,fsdp,tensor. Prints a markdown table: params + optimizer
state per device, the replicated share, and the compiled step's total per device.
"""

import os
import re
import subprocess
import sys

from absl import app, flags

_CONFIG = flags.DEFINE_string("config", "experiments/gpt2_124m.py", "Experiment file.")
_MESHES = flags.DEFINE_multi_string("meshes", ["8:8,1,1", "8:1,8,1", "64:8,8,1"],
                                    "devices:data,fsdp,tensor")
_EXTRA = flags.DEFINE_multi_string("override", [], "Extra --config.<key>=<value> overrides.")

ROW = re.compile(r"(\d+\.\d+) MiB per device")
REPLICATED = re.compile(r"replicated: ([\d.]+)%")
TOTAL = re.compile(r"estimated peak per device: ([\d.]+) GiB")
TEMP = re.compile(r"^\s+temp\s+([\d.]+)", re.M)


def measure(devices: int, data: int, fsdp: int, tensor: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-m", "bigmodels.main", f"--config={_CONFIG.value}", "--dry_run",
         f"--target_devices={devices}", f"--config.mesh.data={data}",
         f"--config.mesh.fsdp={fsdp}", f"--config.mesh.tensor={tensor}", *_EXTRA.value],
        env=env, capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    out = done.stdout
    return {"state": float(ROW.search(out).group(1)),
            "replicated": float(REPLICATED.search(out).group(1)),
            "temp": float(TEMP.search(out).group(1)),
            "total": float(TOTAL.search(out).group(1))}


def main(argv):
    print(f"{_CONFIG.value} {' '.join(_EXTRA.value)}\n")
    print("| devices | data x fsdp x tensor | params + opt state / device (MiB) | replicated "
          "| step temporaries (MiB) | total / device (GiB) |")
    print("|---|---|---|---|---|---|")
    for spec in _MESHES.value:
        devices, axes = spec.split(":")
        data, fsdp, tensor = (int(a) for a in axes.split(","))
        r = measure(int(devices), data, fsdp, tensor)
        if "error" in r:
            print(f"| {devices} | {data} x {fsdp} x {tensor} | {r['error']} | | | |")
            continue
        print(f"| {devices} | {data} x {fsdp} x {tensor} | {r['state']:.1f} | "
              f"{r['replicated']:.2f}% | {r['temp']:.1f} | {r['total']:.2f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
