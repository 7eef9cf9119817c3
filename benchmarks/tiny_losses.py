"""Runs every experiment's `:tiny` variant on 8 simulated CPU devices and prints
{experiment: {"train": {step: loss}, "eval": {metric: value}}} as JSON, so that a
refactor that must not change training can be checked by diffing two outputs.

    python benchmarks/tiny_losses.py --corpus=/tmp/corpus.txt > /tmp/tiny.json

Text experiments without a data path train on `--corpus` (fixed, so that two runs
compare even when the repository's sources changed in between).
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402


def _metrics(workdir: str) -> dict:
    from bigmodels.names import METRICS_FILE      # after main() put the repository on the path
    train, evals = {}, {}
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        for line in f:
            row = json.loads(line)
            if "train/loss" in row:
                train[row["step"]] = row["train/loss"]
            evals.update({f"{row['step']}:{k}": v for k, v in row.items()
                          if k.startswith("eval/")})
    return {"train": train, "eval": evals}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--only", default="", help="comma-separated experiment names")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    from bigmodels import train
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "experiments", "*.py"))):
        name = os.path.basename(path)[:-3]
        if args.only and name not in args.only.split(","):
            continue
        spec = importlib.util.spec_from_file_location(f"experiment_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config("tiny")
        if not config.data.path and config.data.kind in ("text", "text_classes"):
            config.data.path = args.corpus
        if config.get("fid_classifier"):
            config.fid_classifier = ""
        with tempfile.TemporaryDirectory() as workdir:
            try:
                with contextlib.redirect_stdout(sys.stderr):     # keep stdout JSON only
                    train.run(config, workdir)
                out[name] = _metrics(workdir)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                out[name] = {"error": f"{type(e).__name__}: {e}"}
        print(name, file=sys.stderr, flush=True)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
