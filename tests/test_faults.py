"""Real processes killed with SIGKILL and SIGTERM at chosen points resume exactly."""

import glob
import os
import re
import signal

import pytest

from bigmodels import checkpoint
from bigmodels.preemption import EXIT_PREEMPTED
from bigmodels.testing.faults import (TrainProcess, last_logged_step, metric_rows,
                                      saved_state, saving_now, series, state_differences)
from conftest import ROOT

pytestmark = pytest.mark.slow

EVAL_STEP = 18                 # a multiple of log_every, so its train row is logged
# tests/fixtures/hold_eval/sitecustomize.py, on PYTHONPATH, holds a process in its eval
# until a signal comes: the signals meant to land during eval always do, however fast
# the eval (it had 400 batches, to last long enough to be hit).
HOLD_EVAL = ROOT / "tests" / "fixtures" / "hold_eval"


def _args(corpus):
    return ["--config=experiments/quickstart.py:tiny", f"--config.data.path={corpus}",
            "--config.sample_at_end=", "--config.total_steps=30", "--config.log_every=3",
            "--config.ckpt_every=5", f"--config.eval_every={EVAL_STEP}",
            "--config.keep_checkpoints=20", "--config.data.eval_batches=3"]


def _process(corpus, tmp_path, name, env=None):
    # The restarts of one test share a compilation cache of their own: each restart
    # compiled the same programs afresh (about 4 s each). They run one after another, and
    # a torn entry (a kill mid-write) would only be read as a miss, with a warning.
    cache = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    return TrainProcess(_args(corpus), str(tmp_path / name), str(tmp_path / f"{name}-log"),
                        cwd=ROOT, env={**cache, **(env or {})})


def _holdable(corpus, tmp_path, name):
    """(run, hold_next_eval, held_in_eval): after `hold_next_eval()`, the run's next
    eval holds at its second batch until a signal comes; `held_in_eval()` tells when
    it is held there."""
    control = tmp_path / f"{name}-control"
    control.mkdir()
    path = os.pathsep.join(filter(None, [str(HOLD_EVAL), os.environ.get("PYTHONPATH")]))
    run = _process(corpus, tmp_path, name,
                   env={"PYTHONPATH": path, "BIGMODELS_TEST_HOLD_EVAL": str(control)})

    def hold_next_eval():
        (control / "holding").unlink(missing_ok=True)
        (control / "hold").touch()

    def held_in_eval():
        return (control / "holding").exists() and _in_eval(run.workdir)
    return run, hold_next_eval, held_in_eval


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """The same run, never interrupted."""
    run = _process(corpus, tmp_path_factory.mktemp("reference"), "run").start()
    assert run.finish() == 0, run.output()[1][-3000:]
    return run.workdir


def _in_eval(workdir):
    return EVAL_STEP in series(workdir) and EVAL_STEP not in series(workdir, "eval/loss")


def _rows(workdir, key):
    return [(r["step"], r[key]) for r in metric_rows(workdir) if key in r]


def _assert_finishes_like(run, reference, resumes=True):
    assert run.start().finish() == 0, run.output()[1][-3000:]
    assert ("resumed from step" in run.output()[0]) == resumes
    # Every logged train mean (over log_every=3 steps, across restarts) and eval loss is
    # bit-identical, with no line missing or repeated.
    for key in ("train/loss", "train/grad_norm", "eval/loss"):
        assert _rows(run.workdir, key) == _rows(reference, key), key


def test_kill_9_anywhere_resumes_bit_for_bit(corpus, tmp_path, reference):
    run, hold_next_eval, held_in_eval = _holdable(corpus, tmp_path, "killed")
    w = run.workdir
    kill_points = {
        "before the first commit": lambda: (last_logged_step(w) >= 3
                                            and checkpoint.latest_step(w) is None),
        # Any time from step 5's commit to step 10's save (steps 6-9): the window is
        # a few steps long, not the few milliseconds between step 9's log and step 10.
        "between saves": lambda: (last_logged_step(w) >= 6 and not saving_now(w)
                                  and checkpoint.latest_step(w) == 5),
        "in the middle of an async save": lambda: last_logged_step(w) >= 12 and saving_now(w),
        "during eval": held_in_eval,
    }
    for point, condition in kill_points.items():
        if point == "during eval":
            hold_next_eval()
        run.start()
        assert run.wait_until(condition), f"the run ended before {point}"
        assert run.signal(signal.SIGKILL) == -signal.SIGKILL
        committed = checkpoint.latest_step(w)
        if point == "before the first commit":
            assert committed is None
            continue
        # Params, optimizer state, step and data-iterator state equal the reference's.
        assert state_differences(saved_state(w, committed), saved_state(reference, committed)) == []
    _assert_finishes_like(run, reference)


def test_sigterm_saves_the_last_step_and_exits_75(corpus, tmp_path, reference):
    run, hold_next_eval, held_in_eval = _holdable(corpus, tmp_path, "preempted")
    w = run.workdir
    for point, condition in {"during a step": lambda: last_logged_step(w) >= 7,
                             "during eval": held_in_eval}.items():
        if point == "during eval":
            hold_next_eval()
        run.start()
        assert run.wait_until(condition), f"the run ended before {point}"
        assert run.signal(signal.SIGTERM) == EXIT_PREEMPTED, run.output()[1][-3000:]
        err = run.output()[1]
        assert "received SIGTERM" in err and "Traceback" not in err, err[-3000:]
        saved = int(re.search(r"saved step (\d+)", err).group(1))
        assert checkpoint.latest_step(w) == saved
        assert saved >= last_logged_step(w)            # nothing finished was lost
        if point == "during eval":
            assert saved == EVAL_STEP
    _assert_finishes_like(run, reference)


def test_sigterm_during_data_warm_up_and_first_compile(corpus, tmp_path, reference):
    data_dir = tmp_path / "tfds"                        # so that the data is prepared anew
    run = _process(corpus, tmp_path, "early", env={"BIGMODELS_DATA_DIR": str(data_dir)})
    w = run.workdir
    preparing = lambda: bool(glob.glob(str(data_dir / "**" / "*incomplete*"), recursive=True))
    compiling = lambda: os.path.exists(os.path.join(w, "config.json"))
    for condition in (preparing, compiling):
        run.start()
        assert run.wait_until(condition, interval=0.0005)
        assert run.signal(signal.SIGTERM) == EXIT_PREEMPTED, run.output()[1][-3000:]
        err = run.output()[1]
        assert "received SIGTERM: nothing to save yet" in err and "Traceback" not in err, err
    _assert_finishes_like(run, reference, resumes=False)
