"""Seconds and peak host memory of `bigmodels.convert` on a GPT-2-small-sized model
(124M params, random weights, built by transformers from a config: no download).

    python benchmarks/convert_time.py [--layers=12]

Each direction runs in its own process; its peak resident memory (VmHWM) is given
in all and above the process's baseline after importing jax, orbax and safetensors,
against the params' f32 bytes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import jax, orbax.checkpoint, safetensors.numpy           # the baseline: libraries loaded
from bigmodels.convert import hf

def high_water_kib():            # VmHWM: this process's own peak (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

base = high_water_kib()
start = time.perf_counter()
if sys.argv[1] == "import":
    hf.import_hf(sys.argv[2], sys.argv[3])
else:
    hf.export_hf(sys.argv[2], sys.argv[3])
seconds = time.perf_counter() - start
peak = high_water_kib()
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "baseline_mb": base / 1024}))
"""


def _child(*args) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()
    import torch
    import transformers
    with tempfile.TemporaryDirectory() as tmp:
        config = transformers.GPT2Config(n_layer=args.layers)      # GPT-2 small's shapes
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(config)
        params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(os.path.join(tmp, "hf"))
        del model
        mb = params * 4 / 2**20
        print(f"GPT-2 with {args.layers} layers: {params / 1e6:.1f}M params, {mb:.0f} MiB in f32")
        for direction, src, dst in (("import", "hf", "ours"), ("export", "ours", "back")):
            r = _child(direction, os.path.join(tmp, src), os.path.join(tmp, dst))
            above = r["peak_mb"] - r["baseline_mb"]
            print(f"{direction}: {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MiB "
                  f"({above:.0f} MiB above the {r['baseline_mb']:.0f} MiB baseline, "
                  f"{above / mb:.2f}x the params)")


if __name__ == "__main__":
    main()
