"""The one logging path: stdout, `<workdir>/metrics.jsonl` and TensorBoard event files."""

import json
import math
import os
import sys

import tqdm

from bigmodels.names import METRICS_FILE


class MetricsLogger:
    """Writes one JSON object per line: {"step": s, "train/loss": ..., ...}."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS_FILE)
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def drop_after(self, step: int) -> None:
        """On resume: forget lines logged after the restored step, which are redone."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            keep = [line.rstrip("\n") + "\n" for line in f
                    if _step_of(line) is not None and _step_of(line) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in metrics.items():
            self._tb.add_scalar(key, float(value), int(step))
        tqdm.tqdm.write(format_line(row), file=sys.stdout)
        sys.stdout.flush()       # so that logs redirected to a file (SLURM, nohup) are live

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def logged_eval(workdir: str, step: int) -> bool:
    """Whether `<workdir>/metrics.jsonl` holds an eval row for `step` (written only once
    the eval finished)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        for line in f:
            if _step_of(line) == step and '"eval/' in line:
                return True
    return False


def read_metrics(workdir: str) -> list[dict]:
    """The rows of `<workdir>/metrics.jsonl` in order, without a line cut off by a kill."""
    rows = []
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        for line in f:
            if _step_of(line) is not None:
                rows.append(json.loads(line))
    return rows


def _step_of(line: str) -> int | None:
    """The step of a metrics line; None for a blank or cut-off line (a kill mid-write)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def format_line(row: dict) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else str(v)
    return f"step {row['step']}: " + " ".join(f"{k}={fmt(v)}" for k, v in row.items()
                                                if k != "step")
