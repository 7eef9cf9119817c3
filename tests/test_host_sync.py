"""A plain step (no log, eval or checkpoint) fetches nothing from the devices and runs
no cross-process collective; processes compare SIGTERM flags every
`preemption_check_every` steps and at checkpoints."""

import functools
import threading
import traceback

import jax
import pytest
from jax._src import array as jax_array

from bigmodels import preemption, train
from bigmodels.train import loop, train_metrics
from helpers import read_metrics, tiny_lm_config

# jax.transfer_guard does not fire on the CPU backend (its arrays already live in host
# memory), so fetches are counted where every one of them passes: an Array's `_value`
# (device_get, float(), .item()) and `__array__` (np.asarray).
_allowed = threading.local()


@pytest.fixture
def unexpected_fetches(monkeypatch):
    """A list that collects the stack of every fetch outside an allowed section."""
    found = []

    def counted(fn):
        @functools.wraps(fn)
        def wrapped(self, *args, **kwargs):
            if not getattr(_allowed, "on", False):
                found.append("".join(traceback.format_stack(limit=8)))
            return fn(self, *args, **kwargs)
        return wrapped

    value = jax_array.ArrayImpl._value
    monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(counted(value.fget)))
    monkeypatch.setattr(jax_array.ArrayImpl, "__array__",
                        counted(jax_array.ArrayImpl.__array__))
    return found


def _allowing_fetches(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        _allowed.on = True
        try:
            return fn(*args, **kwargs)
        finally:
            _allowed.on = False
    return wrapped


def test_the_fetch_counter_sees_a_fetch(unexpected_fetches):
    x = jax.numpy.ones(3) * 2
    float(x[0])
    assert len(unexpected_fetches) >= 1


def test_plain_steps_fetch_nothing(corpus, tmp_path, monkeypatch, unexpected_fetches):
    """Fetches happen only where the loop logs, evaluates, saves or restores; a fetch
    added to the per-step path would be caught here."""
    fetched_steps = []
    original_fetch = train_metrics.TrainMetrics.fetch

    def recorded_fetch(self):
        fetched_steps.append([step for step, _ in self.pending])
        return original_fetch(self)

    monkeypatch.setattr(train_metrics.TrainMetrics, "fetch", _allowing_fetches(recorded_fetch))
    for name in ("evaluate", "save", "restore_or_init", "_initial_state"):
        monkeypatch.setattr(loop.Trainer, name, _allowing_fetches(getattr(loop.Trainer, name)))
    config = tiny_lm_config(corpus, total_steps=12, log_every=6, eval_every=12, ckpt_every=12)
    _allowing_fetches(train.run)(config, str(tmp_path / "warm"))   # compiles; data cached
    train.run(config, str(tmp_path / "run"))
    assert unexpected_fetches == []
    # One fetch after the first step (compilation is not step time), then one per log.
    assert fetched_steps[-3:] == [[1], [2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]
    assert sorted(read_metrics(str(tmp_path / "run"))) == [6, 12]


def test_processes_compare_sigterm_flags_only_every_n_steps(corpus, tmp_path, monkeypatch):
    compared = []
    monkeypatch.setattr(preemption, "process_count", lambda: 2)
    original_poll = preemption.StopSignals.poll

    def poll(self, index, force=False):
        self.current = (index, force)
        return original_poll(self, index, force)

    def agreed(self):
        compared.append(self.current)
        return False

    monkeypatch.setattr(preemption.StopSignals, "poll", poll)
    monkeypatch.setattr(preemption.StopSignals, "agreed", agreed)
    config = tiny_lm_config(corpus, total_steps=12, log_every=1, eval_every=100,
                            ckpt_every=6, preemption_check_every=5)
    config.data.eval_batches = 3
    train.run(config, str(tmp_path))
    steps = [i for i, _ in compared]
    # Steps 5 and 10 (every 5th), 6 and 12 (checkpoints); the final eval compares once,
    # at its first batch (batches 1 and 2 are not multiples of 5).
    assert steps == [5, 6, 10, 12, 0]


def test_one_process_reads_its_own_flag_every_step():
    watch = preemption.StopSignals("unused", check_every=10)
    watch.received = True
    assert watch.poll(3)
