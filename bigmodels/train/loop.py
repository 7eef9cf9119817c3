"""The training loop: the only place with side effects (I/O, logging, checkpoints).

`run` builds a run (train/setup.py) and hands it to a `Trainer`, whose methods each do
one thing: restore or init, step, log, eval, checkpoint, stop signals. A plain step (no
log, eval or checkpoint) does no device-to-host transfer and no cross-process
collective: its batch was placed on the devices ahead of time by a background thread,
and its metrics stay on device until the next log step.
"""

import dataclasses
import os
import sys

import jax
import tqdm

from bigmodels import checkpoint, names, sharding
from bigmodels.logging import MetricsLogger, logged_eval
from bigmodels.preemption import InterruptedAgain, StopSignals
from bigmodels.regimes import RunContext
from bigmodels.train import setup, state as state_lib
from bigmodels.train.evaluation import evaluate
from bigmodels.train.prefetch import Prefetcher
from bigmodels.train.step import make_eval_step
from bigmodels.train.train_metrics import NonFiniteLoss, TrainMetrics
from bigmodels.train.validate import check_config, check_workdir

EVAL_PENDING = "eval_pending"     # checkpoint metadata: the step's eval still has to run
METRICS_WINDOW = "metrics_window"   # checkpoint metadata: train metrics not yet logged

__all__ = ["NonFiniteLoss", "RunResult", "Trainer", "run"]


def _write_atomically(path: str, text: str) -> None:
    """A kill mid-write never leaves a half-written file (sample.py reads config.json)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


@dataclasses.dataclass
class RunResult:
    state: state_lib.TrainState
    eval_metrics: dict
    config: object
    task: object
    data: object


class Trainer:
    """One run's loop over a built `Setup`, in the parts that make it up."""

    def __init__(self, built: setup.Setup, workdir: str, signals: StopSignals):
        self.built, self.workdir, self.signals = built, workdir, signals
        self.config, self.mesh, self.data, self.task = (built.config, built.mesh,
                                                        built.data, built.task)
        self.primary = jax.process_index() == 0
        if self.config.init_from and checkpoint.latest_step(workdir) is None:
            # Every init_from mismatch is found now, before the workdir is created.
            checkpoint.plan_init(self.config.init_from, built.abstract.params,
                                 self.config.init_from_skip, self.config.init_from_rename)
        self.ckpt = checkpoint.Checkpointer(workdir, keep=self.config.keep_checkpoints)
        self.state = None
        self.eval_metrics = {}
        self.saved = None            # the newest step with a checkpoint (or one in flight)

    def place(self, local_batch):
        """Host-local numpy batch -> global arrays sharded over the batch axes."""
        return sharding.global_batch(local_batch, self.mesh)

    # --- restore or init -------------------------------------------------------------

    def restore_or_init(self) -> tuple[int, dict]:
        """(start step, checkpoint metadata); sets the state and the data position.
        Restoring only reads (a corrupt step is moved aside, never deleted), so a
        checkpoint that does not fit the config is refused before anything is written."""
        built, config = self.built, self.config
        self.train_iter = iter(self.data.train.to_iter_dataset())
        start, state, metadata = self.ckpt.restore_latest(
            self._checkpointed(checkpoint.abstract_with_shardings(built.abstract,
                                                                  built.shardings)),
            self.train_iter)
        if start is None:
            start, state = 0, self._initial_state()
        else:
            for regime in built.regimes:
                state = regime.after_restore(state, built.shardings)
            if self.complete(start, metadata):
                print(f"run already complete at step {start}; nothing to do", flush=True)
            else:
                ignored = " (init_from is ignored when resuming)" if config.init_from else ""
                print(f"resumed from step {start} in {self.workdir}{ignored}", flush=True)
        self.state, self.saved = state, start
        self.signals.saved_step = start or None
        return start, metadata

    def complete(self, start: int, metadata: dict) -> bool:
        """Whether the restored run has nothing left to do, its final eval included: a
        stop during that eval saved the last step with the eval pending, and only the
        log shows that a later run finished it (the step is not saved again)."""
        if start < self.config.total_steps:
            return False
        return not metadata.get(EVAL_PENDING) or logged_eval(self.workdir, start)

    def _checkpointed(self, state):
        """What a checkpoint of `state` (or of its abstract shapes) holds: each regime's
        `checkpoint_state` in turn (LoRA may leave out a base it can re-read)."""
        for regime in self.built.regimes:
            state = regime.checkpoint_state(state)
        return state

    def _initial_state(self):
        """A fresh state, with params from `config.init_from` if it names a checkpoint,
        then each regime's `after_init`."""
        built, config = self.built, self.config
        state = state_lib.init_state(built.task, built.tx, built.rng, built.example,
                                     built.shardings, built.regimes)
        if config.init_from:
            params, fresh = checkpoint.init_params(config.init_from, state.params,
                                                   built.shardings.params,
                                                   config.init_from_skip,
                                                   config.init_from_rename)
            kept = f"; freshly initialised: {', '.join(fresh)}" if fresh else ""
            print(f"initialised params from {config.init_from}{kept}", flush=True)
            state = state.replace(params=params)
        for regime in built.regimes:
            state = regime.after_init(state, built.shardings)
        return state

    def write_run_files(self) -> None:
        if self.primary:
            _write_atomically(os.path.join(self.workdir, names.CONFIG_FILE),
                              self.config.to_json(indent=2))
            self.data.save(self.workdir)

    # --- eval ------------------------------------------------------------------------

    def compile_eval(self) -> None:
        built = self.built
        self.eval_step = built.jit(make_eval_step(self.task),
                                   out_shardings=sharding.replicated(self.mesh))
        self.run_context = RunContext(
            workdir=self.workdir, is_primary=self.primary, task=self.task,
            jit=lambda fn: built.jit(fn, out_shardings=sharding.replicated(self.mesh)),
            eval_batch=lambda: self.place(self.data.eval[0]))

    def evaluate(self, step: int) -> bool:
        """Evaluates and logs `step`, then runs the regimes' after-eval hooks (sample
        images); False if a stop signal cut the eval short."""
        metrics = evaluate(self.eval_step, self.state, self.data.eval, self.place,
                           self.task.finalize_eval,
                           interrupted=lambda i: self.signals.poll(i))
        if metrics is None:
            return False
        self.eval_metrics = metrics
        self.logger.write(step, metrics)
        for regime in self.built.regimes:
            regime.after_eval(self.run_context, step, self.state)
        return True

    # --- checkpoint and stop signals -------------------------------------------------

    def committed(self, step: int | None) -> None:
        """Notes a step whose save is confirmed: a second Ctrl-C names it."""
        if step is not None:
            self.signals.saved_step = step

    def save(self, step: int, eval_pending: bool = False) -> None:
        """Starts an async save of `step` with the data position of its last batch."""
        self.committed(self.ckpt.wait())     # orbax runs one save at a time anyway
        self.ckpt.save(step, self._checkpointed(self.state), self.inputs.position(),
                       metadata={EVAL_PENDING: eval_pending,
                                 METRICS_WINDOW: list(self.metrics.window)})
        self.saved = step

    def stop(self, step: int, eval_pending: bool = False):
        """Saves `step` synchronously (unless it already is) and stops the run with
        Preempted (SIGTERM) or Interrupted (Ctrl-C)."""
        if self.saved != step:
            self.save(step, eval_pending)
        self.committed(self.ckpt.wait())
        raise self.signals.stop(step)

    # --- the loop --------------------------------------------------------------------

    def train(self, start: int, metadata: dict) -> None:
        built, config = self.built, self.config
        self.logger = MetricsLogger(self.workdir, enabled=self.primary)
        # Lines after the restored step (or all, from scratch) are redone.
        self.logger.drop_after(start)
        train_step = built.jit_train_step()
        self.compile_eval()
        self.metrics = TrainMetrics(
            config, self.logger,
            flops_per_step=self.task.train_flops_per_example(built.abstract.params)
            * config.batch_size,
            tokens_per_step=self.task.tokens_per_example * config.batch_size,
            window=metadata.get(METRICS_WINDOW, []))
        self.inputs = Prefetcher(self.train_iter, self.place, config.data.prefetch)
        bar = tqdm.tqdm(total=config.total_steps, initial=start, file=sys.stdout,
                        disable=not sys.stdout.isatty(), dynamic_ncols=True)
        try:
            if metadata.get(EVAL_PENDING) and not self.evaluate(start):
                self.stop(start, eval_pending=True)   # a signal cut it short again
            for step in range(start + 1, config.total_steps + 1):
                self.state, step_metrics = train_step(self.state, next(self.inputs))
                self.metrics.record(step, step_metrics)
                bar.update(1)
                self._after_step(step, first=step == start + 1)
        except InterruptedAgain:
            raise                            # stop at once: no waiting for a save in flight
        except BaseException:
            self.ckpt.close(quiet=True)      # finish a save in flight; keep the first error
            raise
        else:
            self.ckpt.close()
            self.committed(self.saved)       # close() raised if the last save failed
        finally:
            self.inputs.close()
            bar.close()
            self.logger.close()

    def _after_step(self, step: int, first: bool) -> None:
        """Logs, evals, saves and checks for stop signals as `step` asks; nothing on a
        plain step."""
        config = self.config
        last = step == config.total_steps
        is_log = step % config.log_every == 0 or last
        is_eval = step % config.eval_every == 0 or last
        is_ckpt = step % config.ckpt_every == 0 or last
        stop = self.signals.poll(step, force=is_ckpt)
        if first or is_log or is_eval or is_ckpt or stop:
            # Fetched before anything is saved: under nan_policy=stop a non-finite
            # step raises here, so it never reaches a checkpoint.
            if is_log:
                self.metrics.log(step)
            else:
                self.metrics.fetch()
        self.signals.deferred = True         # a step finished: a stop signal now saves it
        if stop:
            self.stop(step, eval_pending=is_eval)
        if is_eval and not self.evaluate(step):
            self.stop(step, eval_pending=True)
        if is_ckpt:
            self.save(step)
        self.committed(self.ckpt.poll())     # a failed background save stops the run here
        if first or is_eval or is_ckpt:
            self.metrics.clock.restart()     # compilation, eval and saving are not step time


def run(config, workdir: str, devices=None) -> RunResult:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

    `devices` (default: all) is the device list the mesh is laid over. Raises BadInput
    for bad config or data (nothing in `workdir` changed), Preempted on SIGTERM and
    Interrupted (a KeyboardInterrupt) on Ctrl-C, both after saving, InterruptedAgain on
    a second Ctrl-C (at once), and RunFailed when training cannot go on. A run whose
    checkpoint is already at `total_steps` returns at once, writing nothing.
    """
    jax.config.update("jax_threefry_partitionable", True)   # same init on any mesh
    check_config(config)
    check_workdir(workdir)
    with StopSignals(workdir, config.preemption_check_every) as signals:
        built = setup.build(config, workdir, devices)
        config = built.config
        if jax.process_index() == 0:
            axes = " ".join(f"{name}={size}" for name, size in built.mesh.shape.items())
            print(f"mesh {axes} over {built.mesh.size} "
                  f"{built.mesh.devices.flat[0].platform} devices", flush=True)
        if config.sample_at_end:
            built.data.tokenizer.encode(config.sample_at_end)   # fails now, not after training
        trainer = Trainer(built, workdir, signals)
        start, metadata = trainer.restore_or_init()
        if trainer.complete(start, metadata):
            trainer.ckpt.close()
            return RunResult(trainer.state, {}, config, built.task, built.data)
        trainer.write_run_files()
        trainer.train(start, metadata)
    if config.sample_at_end and trainer.primary:
        from bigmodels.generate import sample_text
        text = sample_text(built.task.model, trainer.state.params, built.data.tokenizer,
                           config.sample_at_end, max_new_tokens=config.sample_tokens,
                           seed=config.seed)
        print("sample:\n" + text, flush=True)
    return RunResult(trainer.state, trainer.eval_metrics, config, built.task, built.data)
