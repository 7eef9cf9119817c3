"""Ctrl-C takes SIGTERM's path: the last finished step is saved, then one line and exit
130 (a KeyboardInterrupt in library use); a second Ctrl-C stops at once. Rerunning a
finished run does nothing."""

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from jax.experimental import multihost_utils

from bigmodels import checkpoint, preemption, train
from bigmodels.testing.faults import TrainProcess, last_logged_step, metric_rows
from bigmodels.train import loop, train_metrics
from conftest import ROOT
from helpers import experiment_config, tiny_lm_config

# Only the last step is saved and evaluated on schedule: compiling and a process's first
# save are most of the cost, and the Ctrl-C comes long before a scheduled save.
RUN = dict(total_steps=30, log_every=2, ckpt_every=30, eval_every=30)


def _rows(workdir, key):
    return [(r["step"], r[key]) for r in metric_rows(workdir) if key in r]


@pytest.mark.slow
def test_ctrl_c_saves_exits_130_in_one_line_and_resumes_exactly(corpus, tmp_path, capsys):
    args = ["--config=experiments/quickstart.py:tiny", f"--config.data.path={corpus}",
            "--config.sample_at_end=", "--config.data.eval_batches=2",
            *[f"--config.{k}={v}" for k, v in RUN.items()]]
    run = TrainProcess(args, str(tmp_path / "run"), str(tmp_path / "log"), cwd=ROOT)
    w = run.workdir
    run.start()
    assert run.wait_until(lambda: last_logged_step(w) >= 6), "the run ended first"
    assert run.signal(signal.SIGINT) == preemption.EXIT_INTERRUPTED, run.output()[1]
    err = run.output()[1]
    line = re.fullmatch(rf"error: interrupted \(Ctrl-C\): saved step (\d+) in {re.escape(w)}; "
                        r"run the same command again to resume\n", err)
    assert line, err                                  # one line, no traceback
    saved = int(line.group(1))
    assert checkpoint.latest_step(w) == saved and last_logged_step(w) <= saved < 30
    # The resume and the uninterrupted reference run here, on the devices and XLA flags
    # the CLI had (the tests' own), sharing one compile; test_faults resumes via the CLI.
    config = experiment_config("quickstart", "tiny", sample_at_end="", **RUN)
    config.data.update(path=corpus, eval_batches=2)
    train.run(config, str(tmp_path / "reference"))
    capsys.readouterr()
    train.run(config, w)
    assert f"resumed from step {saved}" in capsys.readouterr().out
    for key in ("train/loss", "eval/loss"):
        assert _rows(w, key) == _rows(str(tmp_path / "reference"), key), key


def _ctrl_c_at(monkeypatch, step):
    """A Ctrl-C arrives (a real SIGINT to this process) right after `step` ran."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    record = train_metrics.TrainMetrics.record

    def record_then_interrupt(self, at, metrics):
        record(self, at, metrics)
        if at == step:
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(train_metrics.TrainMetrics, "record", record_then_interrupt)


def test_ctrl_c_in_library_use_saves_then_raises_keyboard_interrupt(corpus, tmp_path,
                                                                    monkeypatch):
    _ctrl_c_at(monkeypatch, 3)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train.run(tiny_lm_config(corpus, total_steps=8), str(tmp_path))
    assert isinstance(stopped.value, preemption.Interrupted) and stopped.value.step == 3
    assert checkpoint.latest_step(str(tmp_path)) == 3
    assert signal.getsignal(signal.SIGINT) is handler      # put back for the notebook


def test_second_ctrl_c_during_the_save_raises_at_once(corpus, tmp_path, monkeypatch):
    _ctrl_c_at(monkeypatch, 5)
    save, managers = checkpoint.Checkpointer.save, []

    def save_then_interrupt_again(self, step, *args, **kwargs):
        save(self, step, *args, **kwargs)
        managers.append(self.manager)
        if step == 5:                                 # the save the first Ctrl-C asked for
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_interrupt_again)
    try:
        with pytest.raises(preemption.InterruptedAgain) as stopped:
            train.run(tiny_lm_config(corpus, total_steps=8, ckpt_every=3), str(tmp_path))
    finally:
        managers[-1].wait_until_finished()           # not left writing into tmp_path
    # Step 3 is the newest save known to be committed; step 5's was not waited for.
    assert stopped.value.step == 3
    assert "step 3 is the newest checkpoint known to be committed" in str(stopped.value)


def test_second_ctrl_c_exits_130_at_once_from_the_cli():
    # A non-daemon thread would keep a normal exit waiting (as an orbax save would).
    code = ("import threading, time\n"
            "from bigmodels.cli import run_main\n"
            "from bigmodels.preemption import InterruptedAgain\n"
            "def main(argv):\n"
            "    threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "    raise InterruptedAgain(7, 'runs/x')\n"
            "run_main(main)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert done.returncode == 130
    assert done.stderr == ("error: interrupted again (Ctrl-C): stopped at once without "
                           "waiting for a save; step 7 is the newest checkpoint known to be "
                           "committed in runs/x\n")


@pytest.mark.parametrize("flags, stops_with", [
    ([0, signal.SIGINT], preemption.Interrupted),
    ([signal.SIGINT, signal.SIGTERM], preemption.Preempted),    # the scheduler's wins
])
def test_processes_agree_on_the_signal_to_stop_with(monkeypatch, flags, stops_with):
    monkeypatch.setattr(preemption, "process_count", lambda: 2)
    monkeypatch.setattr(multihost_utils, "process_allgather", lambda x: np.array(flags))
    watch = preemption.StopSignals("w", check_every=5)
    assert not watch.poll(3)                  # not a checking step: no collective
    assert watch.poll(5)
    assert type(watch.stop(5)) is stops_with


def _files(workdir):
    """{path: (size, mtime)} of every file under `workdir`."""
    found = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), workdir)] = (stat.st_size,
                                                                         stat.st_mtime_ns)
    return found


def test_a_final_eval_cut_short_runs_once_on_resume_then_the_run_is_complete(
        corpus, tmp_path, capsys, monkeypatch):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    evaluate, calls = loop.evaluate, []

    def interrupt_the_first_eval(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                       # the eval at the last step, 4
            signal.raise_signal(signal.SIGINT)
        return evaluate(*args, **kwargs)
    monkeypatch.setattr(loop, "evaluate", interrupt_the_first_eval)
    config, w = tiny_lm_config(corpus, total_steps=4, eval_every=2), str(tmp_path)
    with pytest.raises(preemption.Interrupted):
        train.run(config, w)
    assert [s for s, _ in _rows(w, "eval/loss")] == [2]
    train.run(config, w)                          # runs the pending eval, and only it
    assert "resumed from step 4" in capsys.readouterr().out
    assert [s for s, _ in _rows(w, "eval/loss")] == [2, 4]
    before = _files(w)
    train.run(config, w)
    assert "run already complete at step 4" in capsys.readouterr().out
    assert _files(w) == before


def test_rerunning_a_finished_run_does_nothing(corpus, tmp_path, capsys):
    config, w = tiny_lm_config(corpus, total_steps=4), str(tmp_path)
    train.run(config, w)
    before = _files(w)
    capsys.readouterr()
    result = train.run(config, w)
    out = capsys.readouterr().out
    assert "run already complete at step 4; nothing to do" in out and "resumed" not in out
    assert _files(w) == before
    assert int(result.state.step) == 4 and result.eval_metrics == {}
    # More steps asked for: it resumes and trains on.
    train.run(tiny_lm_config(corpus, total_steps=6), w)
    assert "resumed from step 4" in capsys.readouterr().out
    assert checkpoint.latest_step(w) == 6
