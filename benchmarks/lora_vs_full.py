"""Full fine-tuning against LoRA and QLoRA from a quickstart run, on the stdlib `email`
package (experiments/gpt_finetune_lm.py vs experiments/lora_email.py): eval loss,
optimizer-state bytes, the bytes of the params the state holds and step time, as a
table.

    python benchmarks/lora_vs_full.py [--base=runs/quickstart] [--base_steps=300] \
        [--steps=100] [--workdir=/tmp/lora_vs_full]

Without --base it first trains the quickstart for --base_steps steps. Each fine-tune
keeps its experiment's recipe (full: lr 5e-4; LoRA: rank 8 on every attention and MLP
projection, lr 1e-2) for --steps steps. "base" is the quickstart itself on the email
eval split (a LoRA run's step 1 at lr 0). Step time is the median of the trainer's own
`perf/step_time_s` (compilation excluded), on the host's cores split into devices as
the quickstart does.
"""

import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _experiment(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("")


def _run(config, workdir: str) -> dict:
    import jax
    from bigmodels import train
    from bigmodels.names import METRICS_FILE
    from bigmodels.nn import lora, quantize
    config.sample_at_end = ""
    result = train.run(config, workdir)
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        times = [r["perf/step_time_s"] for r in map(json.loads, f) if "perf/step_time_s" in r]
    params = result.state.params
    trained = lora.split(params)[0] if config.lora.rank > 0 else params
    return {"eval_loss": result.eval_metrics["eval/loss"],
            "trained": sum(x.size for x in jax.tree.leaves(trained)),
            "opt_bytes": quantize.nbytes(result.state.opt_state),
            "param_bytes": quantize.nbytes(params),
            "ms": 1e3 * statistics.median(times) if times else float("nan")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="", help="a quickstart run (default: train one)")
    parser.add_argument("--base_steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workdir", default="/tmp/lora_vs_full")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from bigmodels import host_devices
    quickstart = _experiment("quickstart")
    host_devices.split_host_cpus(quickstart)          # before JAX starts, as bigmodels.main
    base = args.base
    if not base:
        base = os.path.join(args.workdir, "quickstart")
        quickstart.update(total_steps=args.base_steps, eval_every=args.base_steps,
                          ckpt_every=args.base_steps)
        quickstart.optim.decay_steps = args.base_steps
        _run(quickstart, base)

    def finetune(name, **lora):
        config = _experiment(name)
        config.update(total_steps=args.steps, eval_every=args.steps, ckpt_every=args.steps,
                      log_every=10)
        if name == "gpt_finetune_lm":
            config.init_from = base
        else:
            config.lora.update(base=base, **lora)
        return config

    runs = {"full fine-tune": finetune("gpt_finetune_lm"),
            "LoRA r=8": finetune("lora_email"),
            "QLoRA r=8 nf4": finetune("lora_email", base_dtype="nf4"),
            "QLoRA r=8 int8": finetune("lora_email", base_dtype="int8")}
    at_base = finetune("lora_email")
    at_base.total_steps, at_base.optim.lr = 1, 0.0
    rows = {"base (no fine-tune)": _run(at_base, os.path.join(args.workdir, "at_base"))}
    for label, config in runs.items():
        rows[label] = _run(config, os.path.join(args.workdir, label.replace(" ", "_")))
    print(f"\n{args.steps} fine-tuning steps from {base}\n")
    print("| run | eval loss | trained params | optimizer state | params (base + adapters) "
          "| ms/step |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        if label.startswith("base"):
            print(f"| {label} | {r['eval_loss']:.4f} | | | | |")
            continue
        print(f"| {label} | {r['eval_loss']:.4f} | {r['trained']:,} | "
              f"{r['opt_bytes'] / 1e6:.3f} MB | {r['param_bytes'] / 1e6:.3f} MB | "
              f"{r['ms']:.1f} |")


if __name__ == "__main__":
    main()
