"""Fault drill: kill a real training run N times at random moments, restart it each
time, and check that it ends bit-identical to a run that was never killed.

    python benchmarks/fault_drill.py --kills=10 [--seed=0] [--steps=400]

Prints one line:

    kills=N resumes=N diverged_steps=D lost_steps=K

`resumes` counts restarts that resumed from a checkpoint, `diverged_steps` the steps
whose train or eval loss differs from the uninterrupted run's (or is missing), and
`lost_steps` the steps finished before a kill but after the last committed checkpoint,
which the restart redid.
"""

import os
import random
import signal
import sys
import tempfile

from absl import app, flags

from bigmodels import checkpoint
from bigmodels.testing.faults import TrainProcess, diverged_steps, last_logged_step, series

_KILLS = flags.DEFINE_integer("kills", 10, "Number of SIGKILLs.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for the kill moments.")
_STEPS = flags.DEFINE_integer("steps", 400, "Length of the drilled run.")
_CKPT_EVERY = flags.DEFINE_integer("ckpt_every", 10, "Checkpoint interval of the run.")
_SIGNAL = flags.DEFINE_enum("signal", "KILL", ["KILL", "TERM"], "Signal to send.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print one line per kill too.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(steps: int, ckpt_every: int) -> list:
    return ["--config=experiments/quickstart.py:tiny", "--config.sample_at_end=",
            f"--config.total_steps={steps}", "--config.log_every=1",
            f"--config.ckpt_every={ckpt_every}", "--config.eval_every=50",
            "--config.data.eval_batches=50"]


def main(argv):
    del argv
    rng = random.Random(_SEED.value)
    args = _args(_STEPS.value, _CKPT_EVERY.value)
    sig = getattr(signal, "SIG" + _SIGNAL.value)
    with tempfile.TemporaryDirectory() as tmp:
        reference = TrainProcess(args, os.path.join(tmp, "reference"),
                                 os.path.join(tmp, "reference-log"), cwd=ROOT).start()
        if reference.finish() != 0:
            sys.exit("the reference run failed:\n" + reference.output()[1][-3000:])

        run = TrainProcess(args, os.path.join(tmp, "drill"), os.path.join(tmp, "drill-log"),
                           cwd=ROOT)
        targets = sorted(rng.sample(range(2, _STEPS.value - 2), _KILLS.value))
        kills = resumes = lost = 0
        for target in targets:
            run.start()
            resumes += "resumed from step" in _stdout_when_started(run)
            if not run.wait_until(lambda t=target: last_logged_step(run.workdir) >= t):
                continue                      # it finished first; no kill this cycle
            run.signal(sig)
            kills += 1
            committed = checkpoint.latest_step(run.workdir) or 0
            done = last_logged_step(run.workdir)
            lost += max(0, done - committed)
            if _VERBOSE.value:
                print(f"kill {kills}: at step {done}, last committed {committed}", flush=True)
        run.start()
        resumes += "resumed from step" in _stdout_when_started(run)
        if run.finish() != 0:
            sys.exit("the final restart failed:\n" + run.output()[1][-3000:])
        diverged = set()
        for key in ("train/loss", "eval/loss"):
            diverged |= set(diverged_steps(series(run.workdir, key), series(reference.workdir, key)))
    print(f"kills={kills} resumes={resumes} diverged_steps={len(diverged)} lost_steps={lost}")


def _stdout_when_started(run) -> str:
    """The run's stdout once it has either resumed or started fresh (or exited)."""
    def started():
        out = run.output()[0]
        return "resumed from step" in out or "step 1:" in out
    run.wait_until(started)
    return run.output()[0]


if __name__ == "__main__":
    app.run(main)
