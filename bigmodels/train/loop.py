"""The training loop: the only place with side effects (I/O, logging, checkpoints)."""

import dataclasses
import os
import sys
import time

import jax
import numpy as np
import tqdm

from bigmodels import checkpoint, data as data_lib, flops, models, optim, sharding, tasks
from bigmodels.logging import MetricsLogger
from bigmodels.train import state as state_lib
from bigmodels.train.step import make_eval_step, make_train_step
from bigmodels.train.validate import check_batch_split, check_config, check_workdir

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class RunResult:
    state: state_lib.TrainState
    eval_metrics: dict
    config: object
    task: object
    data: object


def _resolve(config, data):
    """Fills what only the data knows (the vocabulary size) into a copy of the config."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if "vocab_size" in config.model and config.model.vocab_size <= 0:
            config.model.vocab_size = data.tokenizer.vocab_size
    return config


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


def evaluate(eval_step, state, eval_batches, mesh) -> dict:
    sums = {}
    for local in eval_batches:
        out = jax.device_get(eval_step(state, sharding.global_batch(local, mesh)))
        for name, (total, weight) in out.items():
            s, w = sums.get(name, (0.0, 0.0))
            sums[name] = (s + float(total), w + float(weight))
    return {f"eval/{k}": s / max(w, 1e-12) for k, (s, w) in sums.items()}


def run(config, workdir: str, devices=None) -> RunResult:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

    `devices` (default: all) is the device list the mesh is laid over.
    """
    jax.config.update("jax_threefry_partitionable", True)   # same init on any mesh
    check_config(config)
    check_workdir(workdir)
    mesh = sharding.make_mesh(config.mesh, devices)
    check_batch_split(config, sharding.data_parallel_size(mesh))
    data = data_lib.build(config, workdir, jax.process_index(), jax.process_count())
    config = _resolve(config, data)
    if config.sample_at_end:
        data.tokenizer.encode(config.sample_at_end)   # an unencodable prompt fails now, not after training
    task = tasks.build(config, models.build(config.model))
    tx, schedule = optim.build(config.optim, config.total_steps)

    rng = jax.random.key(config.seed)
    example = data.train[0]
    abstract, shardings = state_lib.state_shardings(task, tx, mesh, rng, example)

    # Everything above only read; from here on the workdir is written.
    primary = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if primary:
        with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
            f.write(config.to_json(indent=2))
        data.save(workdir)
    ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints)
    logger = MetricsLogger(workdir, enabled=primary)
    train_iter = iter(data.train.to_iter_dataset())

    start = ckpt.latest_step()
    if start is None:
        start = 0
        state = state_lib.init_state(task, tx, rng, example, shardings)
    else:
        state = ckpt.restore(start, checkpoint.abstract_with_shardings(abstract, shardings),
                             train_iter)
        logger.drop_after(start)
        print(f"resumed from step {start} in {workdir}", flush=True)

    batch_shardings = jax.tree.map(lambda x: sharding.batch_sharding(mesh, x.ndim), example)
    train_step = jax.jit(make_train_step(task, tx, schedule, config.seed,
                                         config.grad_accum_steps),
                         in_shardings=(shardings, batch_shardings),
                         out_shardings=(shardings, sharding.replicated(mesh)),
                         donate_argnums=0)
    eval_step = jax.jit(make_eval_step(task), in_shardings=(shardings, batch_shardings),
                        out_shardings=sharding.replicated(mesh))

    flops_per_step = task.train_flops_per_example(abstract.params) * config.batch_size
    tokens_per_step = task.tokens_per_example * config.batch_size
    eval_metrics = {}
    pending = None               # (step, metrics on device): fetched after the next dispatch
    window = []                  # train metrics since the last log line
    clock = StepClock()

    def finish_step(step, device_metrics):
        window.append({f"train/{k}": float(v) for k, v in jax.device_get(device_metrics).items()})
        clock.tick()
        if step % config.log_every == 0 or step == config.total_steps:
            row = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
            dt = clock.seconds_per_step()
            if dt:
                row.update({"perf/step_time_s": dt, "perf/tokens_per_s": tokens_per_step / dt,
                            "perf/mfu": flops.mfu(flops_per_step, dt,
                                                  config.perf.peak_flops_per_device)})
            logger.write(step, row)
            window.clear()
            clock.restart()

    bar = tqdm.tqdm(total=config.total_steps, initial=start, file=sys.stdout,
                    disable=not sys.stdout.isatty(), dynamic_ncols=True)
    for step in range(start + 1, config.total_steps + 1):
        batch = sharding.global_batch(next(train_iter), mesh)
        state, metrics = train_step(state, batch)
        if pending is not None:
            finish_step(*pending)
        pending = (step, metrics)
        bar.update(1)
        is_eval = step % config.eval_every == 0 or step == config.total_steps
        is_ckpt = step % config.ckpt_every == 0 or step == config.total_steps
        if step == start + 1 or is_eval or is_ckpt:
            finish_step(*pending)        # hooks see the step's final metrics
            pending = None
        if is_eval:
            eval_metrics = evaluate(eval_step, state, data.eval, mesh)
            logger.write(step, eval_metrics)
        if is_ckpt:
            ckpt.save(step, state, train_iter, force=True)
        if step == start + 1 or is_eval or is_ckpt:
            clock.restart()              # compilation, eval and saving are not step time
    bar.close()
    ckpt.close()
    logger.close()

    if config.sample_at_end and primary:
        from bigmodels.generate import sample_text
        text = sample_text(task.model, state.params, data.tokenizer, config.sample_at_end,
                           max_new_tokens=config.sample_tokens, seed=config.seed)
        print("sample:\n" + text, flush=True)
    return RunResult(state, eval_metrics, config, task, data)
