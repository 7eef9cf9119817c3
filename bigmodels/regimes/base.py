"""What a regime is, and the update rule every regime starts from.

A *regime* changes how a model trains without editing the trainer: freezing, learning
rate multipliers, alternating parameter groups (a GAN), local SGD, eval images, and
later LoRA, pruning, quantization-aware training and distillation. It is an object
with some of the hooks below; every hook has a default that does nothing, so the
trainer calls all of them on every regime and never asks what a regime can do.

    wrap_task(task) -> task             wrap or intercept the model (LoRA, QAT)
    check(params, model_state)          refuse a config that does not fit the model
                                        (shapes only)
    transform_group(tx) -> tx           one optimizer group's chain: label or mask params
                                        (freeze, LR multipliers, pruning masks)
    transform_optimizer(tx) -> tx       the whole optimizer (local SGD's replicas)
    opt_state_shardings(...)            shardings of an optimizer state it reshaped
    init_state(params)                  its own part of the train state: state.extra[name]
    after_init(state, shardings)        a fresh run's state, after init_from, outside jit:
                                        may read files (LoRA's base)
    checkpoint_state(state) -> state    what a checkpoint holds (also given the abstract
                                        state); all of it by default
    after_restore(state, shardings)     a restored state, outside jit: refills what
                                        checkpoint_state left out
    extra_state_shardings(...)          the shardings of that part
    update                              None, or a rule that replaces the update (see
                                        `plain_update` for the signature); one at most
    post_update(old, new) -> new        pure, inside the step, after the update
    step_metrics(old, new) -> dict      pure, inside the step: more train metrics
    after_eval(run, step, state)        in the loop, after each eval: side effects (PNGs)
    export_params(params, extra)        what an export of the run writes

Pure hooks run inside the jitted step; only `after_eval` may do I/O.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P


class StepContext(NamedTuple):
    """What an update rule is given besides the state, the batch and the RNG."""
    task: Any
    tx: optax.GradientTransformation
    grad_accum_steps: int


class RunContext(NamedTuple):
    """What `after_eval` is given: the run as the loop sees it."""
    workdir: str
    is_primary: bool            # process 0: the one that writes files
    task: Any                   # after every regime's wrap_task
    jit: Callable               # jit(fn(state, batch)) on the run's mesh, outputs replicated
    eval_batch: Callable        # () -> the first eval batch, as global arrays


class Update(NamedTuple):
    """What an update rule returns. `grads` feeds train/grad_norm and the per-module
    norms; `metrics` must hold a scalar "loss"."""
    params: Any
    opt_state: Any
    model_state: Any
    metrics: dict
    grads: Any


class Regime:
    """The base of every regime: each hook does nothing (see the module docstring)."""

    name = "regime"             # its key in state.extra, if it keeps state
    update: Callable | None = None

    def wrap_task(self, task):
        return task

    def check(self, abstract_params, abstract_model_state) -> None:
        pass

    def transform_group(self, tx: optax.GradientTransformation):
        return tx

    def transform_optimizer(self, tx: optax.GradientTransformation):
        return tx

    def opt_state_shardings(self, tx, abstract_opt_state, param_shardings, mesh):
        """None: the trainer's default (each param's state sharded like the param)."""
        return None

    def init_state(self, params):
        """None: this regime keeps no state of its own."""
        return None

    def after_init(self, state, shardings):
        """A fresh run's state (not a resumed one), after `init_from`; outside jit, so
        it may read files. It keeps every shape, dtype and sharding."""
        return state

    def checkpoint_state(self, state):
        """What a checkpoint of `state` holds (called on the abstract state too, to
        restore into); the whole state by default."""
        return state

    def after_restore(self, state, shardings):
        """A resumed run's state, outside jit: refills what `checkpoint_state` left out
        (so it may read files), keeping every shape, dtype and sharding."""
        return state

    def extra_state_shardings(self, abstract_extra, param_shardings, mesh):
        return jax.tree.map(lambda _: NamedSharding(mesh, P()), abstract_extra)

    def post_update(self, old_state, new_state):
        return new_state

    def step_metrics(self, old_state, new_state) -> dict:
        return {}

    def after_eval(self, run, step: int, state) -> None:
        pass

    def export_params(self, params, extra):
        """The params `bigmodels.export` writes (host numpy trees); `extra` is this
        regime's saved state.extra[name], or None when the checkpoint holds none."""
        return params


def microbatches(batch, n: int):
    """B x ... -> n x B/n x ...; microbatch i takes rows i, i+n, ... so every device
    keeps its own rows (no data moves between devices)."""
    def split(x):
        return jnp.swapaxes(x.reshape((x.shape[0] // n, n) + x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def loss_and_grads(grad_fn, params, model_state, batch, rng, grad_accum_steps: int):
    """(metrics, model_state, grads) of one update, over `grad_accum_steps`
    microbatches (a lax.scan whose mean gradient equals the full batch's).
    `grad_fn(params, model_state, batch, rng)` is a `jax.value_and_grad(has_aux=True)`
    of a loss returning (loss, (metrics, model_state))."""
    if grad_accum_steps == 1:
        (_, (metrics, model_state)), grads = grad_fn(params, model_state, batch, rng)
        return metrics, model_state, grads

    def accumulate(carry, micro):
        grad_sum, model_state = carry
        mb, i = micro
        (_, (metrics, model_state)), grads = grad_fn(params, model_state, mb,
                                                     jax.random.fold_in(rng, i))
        return (jax.tree.map(jnp.add, grad_sum, grads), model_state), metrics

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grad_sum, model_state), metrics = jax.lax.scan(
        accumulate, (zeros, model_state),
        (microbatches(batch, grad_accum_steps), jnp.arange(grad_accum_steps)))
    grads = jax.tree.map(lambda g: g / grad_accum_steps, grad_sum)
    return jax.tree.map(jnp.mean, metrics), model_state, grads


def task_grad_fn(task, **loss_kwargs):
    """value_and_grad of the task's train loss with respect to its first argument."""
    return jax.value_and_grad(
        lambda p, ms, b, r: task.loss(p, ms, b, r, train=True, **loss_kwargs), has_aux=True)


def plain_update(ctx: StepContext, state, batch, rng) -> Update:
    """One optimizer step on every param: the update rule unless a regime replaces it."""
    metrics, model_state, grads = loss_and_grads(task_grad_fn(ctx.task), state.params,
                                                 state.model_state, batch, rng,
                                                 ctx.grad_accum_steps)
    updates, opt_state = ctx.tx.update(grads, state.opt_state, state.params,
                                       value=metrics["loss"])
    return Update(optax.apply_updates(state.params, updates), opt_state, model_state,
                  metrics, grads)
