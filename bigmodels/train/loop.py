"""The training loop: the only place with side effects (I/O, logging, checkpoints)."""

import dataclasses
import os
import sys
import time

import jax
import numpy as np
import tqdm

from bigmodels import checkpoint, flops, sharding
from bigmodels.errors import RunFailed
from bigmodels.logging import MetricsLogger
from bigmodels.train import state as state_lib
from bigmodels.preemption import Preempted, SigtermWatch
from bigmodels.train import setup
from bigmodels.train.step import LAYER_NORM_PREFIX, make_eval_step
from bigmodels.train.validate import check_config, check_workdir

CONFIG_FILE = "config.json"
EVAL_PENDING = "eval_pending"     # checkpoint metadata: the step's eval still has to run
METRICS_WINDOW = "metrics_window"   # checkpoint metadata: train metrics not yet logged


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


class NonFiniteLoss(RunFailed):
    """nan_policy=stop and a step produced a NaN or Inf loss or gradient norm."""


class StepClock:
    """Wall time per train step, over the steps finished since the last restart."""

    def __init__(self):
        self.start, self.steps = None, 0

    def restart(self):
        self.start, self.steps = time.perf_counter(), 0

    def tick(self):
        self.steps += 1

    def seconds_per_step(self) -> float | None:
        if self.start is None or self.steps == 0:
            return None
        return (time.perf_counter() - self.start) / self.steps


def evaluate(eval_step, state, eval_batches, mesh, interrupted=lambda: False,
             finalize=None) -> dict | None:
    """Eval metrics over `eval_batches` (sum / weight, or `finalize(sums)` if the task
    has one); None if `interrupted()` turns true."""
    sums = {}
    for local in eval_batches:
        if interrupted():
            return None
        out = jax.device_get(eval_step(state, sharding.global_batch(local, mesh)))
        for name, (total, weight) in out.items():
            s, w = sums.get(name, (0.0, 0.0))
            sums[name] = (s + np.asarray(total, np.float64), w + float(weight))
    if finalize is not None:
        return {f"eval/{k}": float(v) for k, v in finalize(sums).items()}
    return {f"eval/{k}": float(s / max(w, 1e-12)) for k, (s, w) in sums.items()}


def write_eval_images(workdir: str, step: int, images: dict) -> None:
    """`images/<name>_<step>.png` for each {name: N x H x W x C array in [0, 1]}."""
    from bigmodels import images as images_lib
    directory = os.path.join(workdir, "images")
    os.makedirs(directory, exist_ok=True)
    for name, batch in images.items():
        path = os.path.join(directory, f"{name}_{step:06d}.png")
        with open(path + ".tmp", "wb") as f:
            f.write(images_lib.png_bytes(images_lib.grid(np.asarray(batch))))
        os.replace(path + ".tmp", path)


def _non_finite_message(step: int, metrics: dict, layer_norms: dict) -> str:
    layers = ", ".join(f"{k[len(LAYER_NORM_PREFIX):]}={float(v):.4g}"
                       for k, v in sorted(layer_norms.items()))
    return (f"non-finite loss or gradient at step {step} (loss={float(metrics['loss']):.4g}, "
            f"grad_norm={float(metrics['grad_norm']):.4g}); the update was not applied; "
            f"per-layer grad norms: {layers}")


def _initial_state(config, task, tx, rng, example, shardings):
    """A fresh state, with params from `config.init_from` if it names a checkpoint."""
    state = state_lib.init_state(task, tx, rng, example, shardings)
    if not config.init_from:
        return state
    params, fresh = checkpoint.init_params(config.init_from, state.params, shardings.params,
                                           config.init_from_skip, config.init_from_rename)
    kept = f"; freshly initialised: {', '.join(fresh)}" if fresh else ""
    print(f"initialised params from {config.init_from}{kept}", flush=True)
    return state.replace(params=params)


def run(config, workdir: str, devices=None) -> RunResult:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

    `devices` (default: all) is the device list the mesh is laid over. Raises BadInput
    for bad config or data (nothing in `workdir` changed), Preempted on SIGTERM (after
    saving), and RunFailed when training cannot go on.
    """
    jax.config.update("jax_threefry_partitionable", True)   # same init on any mesh
    check_config(config)
    check_workdir(workdir)
    with SigtermWatch(workdir) as sigterm:
        return _run(config, workdir, devices, sigterm)


def _run(config, workdir, devices, sigterm) -> RunResult:
    built = setup.build(config, workdir, devices)
    config, mesh, data, task = built.config, built.mesh, built.data, built.task
    tx, example = built.tx, built.example
    abstract, shardings, rng = built.abstract, built.shardings, built.rng
    if jax.process_index() == 0:
        axes = " ".join(f"{name}={size}" for name, size in mesh.shape.items())
        print(f"mesh {axes} over {mesh.size} {mesh.devices.flat[0].platform} devices",
              flush=True)
    if config.sample_at_end:
        data.tokenizer.encode(config.sample_at_end)   # an unencodable prompt fails now, not after training

    # Restoring only reads (a corrupt step is moved aside, never deleted), so a
    # checkpoint that does not fit the config is refused before anything is written.
    if config.init_from and checkpoint.latest_step(workdir) is None:
        # Every init_from mismatch is found now, before the workdir is created.
        checkpoint.plan_init(config.init_from, abstract.params, config.init_from_skip,
                             config.init_from_rename)
    ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints)
    train_iter = iter(data.train.to_iter_dataset())
    start, state, saved_metadata = ckpt.restore_latest(
        checkpoint.abstract_with_shardings(abstract, shardings), train_iter)
    if start is None:
        start = 0
        state = _initial_state(config, task, tx, rng, example, shardings)
    else:
        ignored = " (init_from is ignored when resuming)" if config.init_from else ""
        print(f"resumed from step {start} in {workdir}{ignored}", flush=True)
    sigterm.saved_step = start or None

    primary = jax.process_index() == 0
    if primary:
        _write_atomically(os.path.join(workdir, CONFIG_FILE), config.to_json(indent=2))
        data.save(workdir)
    logger = MetricsLogger(workdir, enabled=primary)
    logger.drop_after(start)     # lines after the restored step (or all, from scratch) are redone

    train_step = built.jit_train_step()
    eval_step = built.jit(make_eval_step(task), out_shardings=sharding.replicated(mesh))

    finalize = getattr(task, "finalize_eval", None)
    images_step = None
    if hasattr(task, "eval_images"):     # generative tasks: sample grids at each eval
        images_step = built.jit(
            lambda state, batch: task.eval_images(state.params, state.model_state, batch),
            out_shardings=sharding.replicated(mesh))

    def log_eval(step, metrics):
        logger.write(step, metrics)
        if images_step is not None:
            images = jax.device_get(images_step(state, sharding.global_batch(data.eval[0],
                                                                             mesh)))
            if primary:
                write_eval_images(workdir, step, images)
    flops_per_step = task.train_flops_per_example(abstract.params) * config.batch_size
    tokens_per_step = task.tokens_per_example * config.batch_size
    eval_metrics = {}
    pending = None               # (step, metrics on device): fetched after the next dispatch
    # Finite train metrics since the last log line; saved with each checkpoint so that
    # a resumed run logs the same means as an uninterrupted one.
    window = list(saved_metadata.get(METRICS_WINDOW, []))
    skipped_in_a_row = 0
    clock = StepClock()
    saved = start                # the newest step with a checkpoint (or in flight)

    def finish_step(step, device_metrics):
        nonlocal skipped_in_a_row
        # Per-layer norms are only fetched when needed: every transfer costs host time.
        host = jax.device_get({k: v for k, v in device_metrics.items()
                               if not k.startswith(LAYER_NORM_PREFIX)})
        if not host.pop("finite"):
            layer_norms = jax.device_get({k: v for k, v in device_metrics.items()
                                          if k.startswith(LAYER_NORM_PREFIX)})
            message = _non_finite_message(step, host, layer_norms)
            logger.write(step, {"train/nonfinite": 1.0})
            skipped_in_a_row += 1
            if config.nan_policy == "stop":
                raise NonFiniteLoss(message + "; stopping (nan_policy=stop)")
            if skipped_in_a_row > config.nan_skip_limit:
                raise NonFiniteLoss(f"{message}; {skipped_in_a_row} steps in a row were "
                                    f"non-finite (nan_skip_limit={config.nan_skip_limit})")
            print(f"warning: {message}; going on (nan_policy=skip)", file=sys.stderr,
                  flush=True)
        else:
            skipped_in_a_row = 0
            window.append({f"train/{k}": float(v) for k, v in host.items()})
        clock.tick()
        if (step % config.log_every == 0 or step == config.total_steps) and window:
            row = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
            dt = clock.seconds_per_step()
            if dt:
                row.update({"perf/step_time_s": dt, "perf/tokens_per_s": tokens_per_step / dt,
                            "perf/mfu": flops.mfu(flops_per_step, dt,
                                                  config.perf.peak_flops_per_device)})
            logger.write(step, row)
            window.clear()
            clock.restart()

    def preempt(step, eval_pending=False):
        """Saves `step` synchronously (unless it already is) and stops the run."""
        if saved != step:
            ckpt.save(step, state, train_iter, metadata=save_metadata(eval_pending))
        ckpt.wait()
        raise Preempted(step, workdir)

    def save_metadata(eval_pending=False):
        return {EVAL_PENDING: eval_pending, METRICS_WINDOW: list(window)}

    if saved_metadata.get(EVAL_PENDING):        # a SIGTERM cut this step's eval short
        eval_metrics = evaluate(eval_step, state, data.eval, mesh, interrupted=sigterm.agreed,
                                finalize=finalize)
        if eval_metrics is None:
            preempt(start, eval_pending=True)
        log_eval(start, eval_metrics)

    bar = tqdm.tqdm(total=config.total_steps, initial=start, file=sys.stdout,
                    disable=not sys.stdout.isatty(), dynamic_ncols=True)
    try:
        for step in range(start + 1, config.total_steps + 1):
            batch = sharding.global_batch(next(train_iter), mesh)
            state, metrics = train_step(state, batch)
            if pending is not None:
                finish_step(*pending)
            pending = (step, metrics)
            bar.update(1)
            is_eval = step % config.eval_every == 0 or step == config.total_steps
            is_ckpt = step % config.ckpt_every == 0 or step == config.total_steps
            stop = sigterm.agreed()
            if step == start + 1 or is_eval or is_ckpt or stop:
                finish_step(*pending)        # hooks see the step's final metrics
                pending = None
            sigterm.deferred = True          # a step finished: a SIGTERM now saves it
            if stop:
                preempt(step, eval_pending=is_eval)
            if is_eval:
                eval_metrics = evaluate(eval_step, state, data.eval, mesh,
                                        interrupted=sigterm.agreed, finalize=finalize)
                if eval_metrics is None:
                    preempt(step, eval_pending=True)
                log_eval(step, eval_metrics)
            if is_ckpt:
                ckpt.save(step, state, train_iter, metadata=save_metadata())
                saved = step
            ckpt.poll()                      # a failed background save stops the run here
            if step == start + 1 or is_eval or is_ckpt:
                clock.restart()              # compilation, eval and saving are not step time
    except BaseException:
        ckpt.close(quiet=True)           # finish a save in flight; keep the first error
        raise
    else:
        ckpt.close()
    finally:
        bar.close()
        logger.close()

    if config.sample_at_end and primary:
        from bigmodels.generate import sample_text
        text = sample_text(task.model, state.params, data.tokenizer, config.sample_at_end,
                           max_new_tokens=config.sample_tokens, seed=config.seed)
        print("sample:\n" + text, flush=True)
    return RunResult(state, eval_metrics, config, task, data)
