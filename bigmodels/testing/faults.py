"""Start, signal and restart real training processes, and compare what they leave.

Shared by tests/test_faults.py, tests/test_interrupt.py and benchmarks/fault_drill.py: a
run is the CLI in a subprocess, so SIGKILL, SIGTERM and SIGINT (Ctrl-C) hit it exactly as
a scheduler's or a terminal's would.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from bigmodels import checkpoint
from bigmodels.checkpoint import tree
from bigmodels.names import METRICS_FILE


class TrainProcess:
    """`python -m bigmodels.main <args> --workdir=<workdir>` with its output in files."""

    def __init__(self, args: list, workdir: str, log_prefix: str, cwd: str | None = None,
                 env: dict | None = None):
        self.args, self.workdir, self.cwd = list(args), workdir, cwd
        self.env = None if env is None else {**os.environ, **env}
        self.log_prefix = log_prefix
        self.proc = None
        self.starts = 0

    def start(self) -> "TrainProcess":
        self.starts += 1
        stem = f"{self.log_prefix}.{self.starts}"
        self.out_path, self.err_path = stem + ".out", stem + ".err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bigmodels.main", *self.args,
                 f"--workdir={self.workdir}"], cwd=self.cwd, env=self.env, stdout=out,
                stderr=err)
        return self

    def wait_until(self, predicate, timeout: float = 300, interval: float = 0.002) -> bool:
        """True once `predicate()` holds while the process runs; False if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return predicate()
            time.sleep(interval)
        raise TimeoutError(f"condition not met within {timeout}s: {self.args}")

    def signal(self, sig=signal.SIGKILL, timeout: float = 300) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def finish(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout)

    def output(self) -> tuple[str, str]:
        with open(self.out_path) as out, open(self.err_path) as err:
            return out.read(), err.read()


def metric_rows(workdir: str) -> list[dict]:
    """Every complete line of metrics.jsonl (a line cut off by a kill is skipped)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def series(workdir: str, key: str = "train/loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in metric_rows(workdir) if key in r}


def last_logged_step(workdir: str, key: str = "train/loss") -> int:
    return max(series(workdir, key), default=0)


def saving_now(workdir: str) -> bool:
    """True while orbax is writing a step (its temporary directory exists)."""
    return bool(glob.glob(os.path.join(workdir, checkpoint.CHECKPOINT_DIR, "*.orbax-checkpoint-tmp*")))


def saved_state(workdir: str, step: int) -> dict:
    """{name: numpy array} of everything saved at `step`, plus the data iterator state."""
    state = tree.flatten(checkpoint.load(workdir, step=step, prefix=""))
    data_dir = os.path.join(workdir, checkpoint.CHECKPOINT_DIR, str(step), "data")
    for path in sorted(glob.glob(os.path.join(data_dir, "*.json"))):
        with open(path) as f:
            state["data/" + os.path.basename(path)] = json.load(f)
    return state


def state_differences(a: dict, b: dict) -> list[str]:
    """Names whose values are not bit-identical (or that only one side has)."""
    diffs = sorted(a.keys() ^ b.keys())
    for name in sorted(a.keys() & b.keys()):
        x, y = a[name], b[name]
        same = (np.array_equal(np.asarray(x), np.asarray(y)) if isinstance(x, np.ndarray)
                else x == y)
        if not same:
            diffs.append(name)
    return diffs


def diverged_steps(run: dict, reference: dict) -> list[int]:
    """Steps whose value differs from the reference's, bit for bit (or is missing)."""
    return sorted(s for s in reference if run.get(s) != reference[s])

