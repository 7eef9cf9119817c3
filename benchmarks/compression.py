"""Smaller and faster models, measured: one table per experiment with the eval metric,
the bytes of the params on disk, the bytes of the params in device memory and the
time of one eval step, for each way of shrinking the trained model.

    python benchmarks/compression.py --experiment=digits_cnn [--root=/tmp/compression] \
        [--rows=f32,bf16,int8,int4,qat,prune50,prune75,prune90,student]

Every model comes from the real entry points, as subprocesses: `bigmodels.main` trains
(the experiment's own recipe and step count), `bigmodels.export --dtype` writes the
f32, bf16, int8 and int4 files, `--sparse` the pruned ones. Rows:

- f32, bf16: the dense run, exported at that precision (`bigmodels.export --dtype`).
- int8, int4: qwix post-training quantization of the dense run (`bigmodels.quantize`),
  one scale per output channel; weights only, except for models with convolutions,
  which qwix quantizes only with int8 activations too (ACTIVATIONS below).
- qat: trained from scratch with fake int8 quantization (`quant.mode=qat`), the same
  steps, then exported as int8.
- pruneNN: trained from scratch with gradual magnitude pruning to NN% of the kernels
  PRUNE_INCLUDE names (`prune.target`), from 10% to 70% of the steps, exported
  `--sparse`; the "zero params" column gives the fraction of all params that are zero.
- student / student alone: a model about half the size (STUDENTS below) trained with
  the dense run as its teacher (`distill.teacher`, alpha 0.5, T 2), and without it.

Metric: `bigmodels.evaluate`'s on the run's eval split. Device bytes: the params as
loaded for serving (quantized ones stay int8/int4 plus scales; XLA:CPU holds an int4
in a byte). Step time: the median of 20 timed eval steps on the first eval batch, after
one warm-up, on this process's devices. Trained runs are reused when they are complete,
so the script can be re-run to add rows.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The metric each table reports, and the half-size student's overrides.
METRICS = {"quickstart": "eval/loss", "digits_cnn": "eval/accuracy",
           "digits_vit": "eval/accuracy", "bert_classify": "eval/accuracy"}
# What pruning prunes: the attention and MLP kernels of a Transformer; in the CNN the
# second convolution and the dense layer, keeping the first convolution (288 weights
# reading one channel) and the classifier dense, as usual (at 90% of every kernel its
# accuracy fell to 0.94, with the default `kernel$`).
PRUNE_INCLUDE = {"digits_cnn": "^(conv_1|dense)/kernel$"}
TRANSFORMER_PRUNE_INCLUDE = "(attn|mlp)/.*kernel$"
# qwix quantizes convolutions only with int8 activations too (w8a8, w4a8).
ACTIVATIONS = {"digits_cnn": "int8"}
STUDENTS = {"quickstart": ["--config.model.num_layers=2"],
            "digits_cnn": ["--config.model.channels=(16,32)", "--config.model.dense=64"],
            "digits_vit": ["--config.model.num_layers=2"],
            "bert_classify": ["--config.model.num_layers=2"]}
ROWS = ("f32", "bf16", "int8", "int4", "qat", "prune50", "prune75", "prune90", "student")


def _experiment(name: str, variant: str = ""):
    """The experiment's config, as `--config=experiments/<name>.py[:variant]` gives it."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def _python(*args: str, log: str) -> None:
    """Runs `python -m <args>` from the repo root; its output goes to `log`."""
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, stdout=f,
                              stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): python -m {' '.join(args)}; see {log}")


def _train(root: str, experiment: str, name: str, *overrides: str) -> str:
    """The run `root/name` of the experiment (`name[:variant]`) with `overrides`, trained
    unless complete."""
    from bigmodels import checkpoint
    workdir = os.path.join(root, name)
    if not (os.path.isdir(workdir) and checkpoint.latest_step(workdir)):
        module, _, variant = experiment.partition(":")
        _python("bigmodels.main", f"--config=experiments/{module}.py" + (f":{variant}" if variant else ""),
                f"--workdir={workdir}", "--config.sample_at_end=", *overrides,
                log=workdir + ".log")
    return workdir


def _export(run: str, out: str, *flags: str) -> str:
    if not os.path.isdir(out):
        _python("bigmodels.export", f"--workdir={run}", f"--out={out}", *flags,
                log=out + ".log")
    return out


def _quantize(run: str, out: str, weights: str, activations: str) -> str:
    if not os.path.isdir(out):
        _python("bigmodels.quantize", f"--workdir={run}", f"--out={out}",
                f"--weights={weights}", f"--activations={activations}", log=out + ".log")
    return out


def _disk_bytes(export: str) -> int:
    """Bytes of the params: every file of the export but its config and data files."""
    from bigmodels.names import CONFIG_FILE, DATA_FILES
    skip = {os.path.join(export, f) for f in (CONFIG_FILE,) + DATA_FILES}
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(export)
               for f in files if os.path.join(d, f) not in skip)


def _measure(export: str, metric: str) -> dict:
    """{metric, device bytes, ms per eval step} of the export at `export`."""
    import jax
    from bigmodels import evaluate
    from bigmodels.train.evaluation import evaluate as run_eval
    e = evaluate.prepare(export)
    value = run_eval(e.eval_step, e.state, e.eval_batches(), e.to_global,
                     e.finalize)[metric]
    batch = e.to_global(next(iter(e.eval_batches())))
    jax.block_until_ready(e.eval_step(e.state, batch))
    times = []
    for _ in range(20):
        start = time.perf_counter()
        jax.block_until_ready(e.eval_step(e.state, batch))
        times.append(time.perf_counter() - start)
    leaves = jax.tree.leaves(e.state.params)
    device = sum(x.nbytes for x in leaves)
    zeros = sum(x.size - int(jax.numpy.count_nonzero(x)) for x in leaves)
    return {"metric": value, "disk": _disk_bytes(export), "device": device,
            "zeros": zeros / sum(x.size for x in leaves),
            "ms": 1e3 * statistics.median(times)}


def _models(root: str, experiment: str, rows) -> list[tuple[str, str]]:
    """(row label, export dir) for each row asked for, training what is missing."""
    dense = _train(root, experiment, "dense")
    out = []
    for dtype in ("f32", "bf16"):
        if dtype in rows:
            flag = {"f32": "float32", "bf16": "bfloat16"}[dtype]
            out.append((dtype, _export(dense, f"{root}/export_{dtype}", f"--dtype={flag}")))
    activations = ACTIVATIONS.get(experiment.split(":")[0], "")
    for weights in ("int8", "int4"):
        if weights in rows:
            label = weights + (f" (activations {activations})" if activations else "")
            out.append((label, _quantize(dense, f"{root}/export_{weights}", weights,
                                         activations)))
    if "qat" in rows:
        qat = _train(root, experiment, "qat", "--config.quant.mode=qat",
                     f"--config.quant.activations={activations}")
        out.append(("QAT int8", _quantize(qat, f"{root}/export_qat", "int8", activations)))
    for target in (50, 75, 90):
        if f"prune{target}" in rows:
            steps = _experiment(*experiment.split(":")).total_steps
            run = _train(root, experiment, f"prune{target}",
                         f"--config.prune.target={target / 100}",
                         "--config.prune.include=" + PRUNE_INCLUDE.get(
                             experiment.split(":")[0], TRANSFORMER_PRUNE_INCLUDE),
                         f"--config.prune.begin_step={steps // 10}",
                         f"--config.prune.end_step={steps * 7 // 10}")
            out.append((f"{target}% sparse", _export(run, f"{root}/export_prune{target}",
                                                     "--sparse")))
    if "student" in rows:
        student = STUDENTS[experiment.split(":")[0]]
        taught = _train(root, experiment, "student", f"--config.distill.teacher={dense}",
                        *student)
        alone = _train(root, experiment, "student_alone", *student)
        out.append(("distilled student", _export(taught, f"{root}/export_student")))
        out.append(("same student alone", _export(alone, f"{root}/export_student_alone")))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", required=True, choices=sorted(METRICS))
    parser.add_argument("--root", default="/tmp/compression")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--variant", default="", help="e.g. tiny, for a quick check")
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        sys.exit(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    sys.path.insert(0, ROOT)
    name = args.experiment + (f":{args.variant}" if args.variant else "")
    root = os.path.join(args.root, name.replace(":", "_"))
    os.makedirs(root, exist_ok=True)
    metric = METRICS[args.experiment]
    measured = [(label, _measure(path, metric)) for label, path in _models(root, name, rows)]
    base = dict(measured).get("f32")
    print(f"\n{name}: {metric}, params on disk and in device memory, eval step\n")
    print("| model | " + metric + " | disk (KB) | vs f32 | device (KB) | zero params | "
          "ms / eval step |")
    print("|---|---|---|---|---|---|---|")
    for label, m in measured:
        ratio = f"{m['disk'] / base['disk']:.3f}x" if base else ""
        print(f"| {label} | {m['metric']:.4f} | {m['disk'] / 1e3:.1f} | {ratio} | "
              f"{m['device'] / 1e3:.1f} | {m['zeros']:.1%} | {m['ms']:.2f} |")


if __name__ == "__main__":
    main()
