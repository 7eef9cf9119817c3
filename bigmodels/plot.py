"""Curves of one or more runs from their `metrics.jsonl`, one panel per metric, one
line per run, for comparing runs:

    python -m bigmodels.plot --workdir=runs/a --workdir=runs/b \
        [--metrics=train/loss,eval/loss] --out=curves.png

From a notebook: `bigmodels.plot.plot_runs(["runs/a", "runs/b"])` returns the figure.
Needs matplotlib (`pip install -e ".[notebooks]"`).
"""

import os

from absl import flags

from bigmodels.cli import fail, run_main
from bigmodels.errors import BadInput
from bigmodels.names import METRICS_FILE

DEFAULT_METRICS = ("train/loss", "eval/loss")


def _runs(workdirs) -> dict:
    """{label: rows} of each workdir; labels are the mapping's keys when `workdirs` is a
    {label: workdir} dict, else the workdirs' last path parts (whole paths on a clash)."""
    from bigmodels.logging import read_metrics
    if not workdirs:
        raise BadInput("--workdir: give at least one run")
    pairs = workdirs.items() if isinstance(workdirs, dict) else [(None, w) for w in workdirs]
    runs = {}
    for label, workdir in pairs:
        if not os.path.isfile(os.path.join(workdir, METRICS_FILE)):
            raise BadInput(f"--workdir={workdir}: no {METRICS_FILE} (not a run directory)")
        if label is None:
            label = os.path.basename(os.path.normpath(workdir))
            label = label if label not in runs else os.path.normpath(workdir)
        runs[label] = read_metrics(workdir)
    return runs


def plot_runs(workdirs, metrics=None, out: str | None = None):
    """A matplotlib figure of `metrics` (default: train and eval loss, those logged)
    against step, a line per run; saved to `out` (PNG) when given. `workdirs`: one run
    directory, a list of them, or a {label: workdir} dict to name the lines."""
    try:
        import matplotlib
        if out:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BadInput("bigmodels.plot needs matplotlib: pip install -e \".[notebooks]\"") \
            from None
    if isinstance(workdirs, str):
        workdirs = [workdirs]
    elif not isinstance(workdirs, dict):
        workdirs = list(workdirs)
    runs = _runs(workdirs)
    logged = {k for rows in runs.values() for row in rows for k in row if k != "step"}
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in logged] or sorted(logged)[:1]
    for metric in metrics:
        if metric not in logged:
            raise BadInput(f"--metrics: {metric!r} is in no run's {METRICS_FILE} "
                           f"(logged: {', '.join(sorted(logged))})")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, rows in runs.items():
            points = [(r["step"], r[metric]) for r in rows if metric in r]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=label)
        ax.set(title=metric, xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        fig.savefig(out, dpi=120)
    return fig


def define_flags() -> None:
    flags.DEFINE_multi_string("workdir", None, "A run directory (repeat to compare runs).")
    flags.DEFINE_list("metrics", None, "Metrics to plot (default: train/loss, eval/loss).")
    flags.DEFINE_string("out", None, "The PNG to write.")


def main(argv):
    args = flags.FLAGS
    if not args.out:
        fail("--out is required (the PNG to write)")
    plot_runs(args.workdir or [], args.metrics, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    define_flags()
    run_main(main)
