"""Pure train and eval steps. The loop jits them once with explicit shardings."""

import functools

import jax
import jax.numpy as jnp
import optax

from bigmodels import optim

LAYER_NORM_PREFIX = "grad_norm/"    # per top-level module; the loop reports them on NaN


def _microbatches(batch, n: int):
    """B x ... -> n x B/n x ...; microbatch i takes rows i, i+n, ... so every
    device keeps its own rows (no data moves between devices)."""
    def split(x):
        return jnp.swapaxes(x.reshape((x.shape[0] // n, n) + x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def _loss_and_grads(grad_fn, params, model_state, batch, rng, grad_accum_steps: int):
    """(metrics, model_state, grads) of one update, over `grad_accum_steps`
    microbatches (a lax.scan whose mean gradient equals the full batch's)."""
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
        (_microbatches(batch, grad_accum_steps), jnp.arange(grad_accum_steps)))
    grads = jax.tree.map(lambda g: g / grad_accum_steps, grad_sum)
    return jax.tree.map(jnp.mean, metrics), model_state, grads


def _update_all(task, tx, grad_accum_steps, state, batch, rng):
    """One optimizer step on every param: (params, opt_state, model_state, metrics, grads)."""
    grad_fn = jax.value_and_grad(
        lambda p, ms, b, r: task.loss(p, ms, b, r, train=True), has_aux=True)
    metrics, model_state, grads = _loss_and_grads(grad_fn, state.params, state.model_state,
                                                  batch, rng, grad_accum_steps)
    updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                   value=metrics["loss"])
    return optax.apply_updates(state.params, updates), opt_state, model_state, metrics, grads


def _update_in_turn(task, tx, grad_accum_steps, state, batch, rng):
    """Alternating updates (a GAN): for each group in `task.update_groups`, in order, the
    task's loss for that group is differentiated with respect to that group's params
    only, and only that group's params and optimizer state change; later groups see
    the earlier groups' new params. Metric "loss" becomes "loss_<group>", and "loss"
    is the sum over groups."""
    params, opt_state, model_state = state.params, state.opt_state, state.model_state
    metrics, grads = {}, {}
    for i, group in enumerate(task.update_groups):
        def group_loss(group_params, ms, b, r, group=group, params=params):
            return task.loss({**params, group: group_params}, ms, b, r, train=True,
                             group=group)
        grad_fn = jax.value_and_grad(group_loss, has_aux=True)
        group_metrics, model_state, grads[group] = _loss_and_grads(
            grad_fn, params[group], model_state, batch, jax.random.fold_in(rng, i),
            grad_accum_steps)
        # The other groups' zero gradients only feed optimizer outputs that are thrown
        # away, so XLA drops that work.
        full_grads = {name: grads[group] if name == group else jax.tree.map(jnp.zeros_like, p)
                      for name, p in params.items()}
        updates, new_opt_state = tx.update(full_grads, opt_state, params,
                                           value=group_metrics["loss"])
        params = {**params, group: optax.apply_updates(params[group], updates[group])}
        opt_state = optim.keep_group(new_opt_state, opt_state, group)
        metrics.update({k: v for k, v in group_metrics.items() if k != "loss"})
        metrics[f"loss_{group}"] = group_metrics["loss"]
    metrics["loss"] = sum(metrics[f"loss_{g}"] for g in task.update_groups)
    return params, opt_state, model_state, metrics, grads


def make_train_step(task, tx, schedule, seed: int, grad_accum_steps: int = 1):
    """Returns step(state, batch) -> (state, metrics). Metrics are scalar means, plus
    `finite` (False: the update was skipped) and per-module gradient norms.

    A task with `update_groups` (names of top-level modules) is updated one group at a
    time, in that order, within the step (see `_update_in_turn`); a local-SGD optimizer
    steps every replica on its share of the batch (train/local_sgd.py)."""
    seed_key = jax.random.key(seed)
    update = _update_in_turn if getattr(task, "update_groups", ()) else _update_all
    if hasattr(tx, "inner_steps"):                 # local SGD / DiLoCo
        from bigmodels.train import local_sgd
        update = functools.partial(local_sgd.update, loss_and_grads=_loss_and_grads)

    def step(state, batch):
        rng = jax.random.fold_in(seed_key, state.step)
        params, opt_state, model_state, metrics, grads = update(
            task, tx, grad_accum_steps, state, batch, rng)
        grad_norm = optax.tree.norm(grads)
        # A non-finite loss or gradient never reaches the state: the update is dropped
        # here (one select, fused into the update) and the loop applies `nan_policy`.
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
        params, opt_state, model_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old),
            (params, opt_state, model_state),
            (state.params, state.opt_state, state.model_state))
        metrics = {**metrics, "grad_norm": grad_norm, "finite": finite,
                   "lr": optim.current_lr(schedule, opt_state, state.step),
                   **{f"{LAYER_NORM_PREFIX}{name}": optax.tree.norm(g)
                      for name, g in grads.items()}}
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  model_state=model_state)
        return new_state, metrics

    return step


def make_eval_step(task):
    """Returns eval_step(state, batch) -> {metric: (sum, weight)}."""
    def eval_step(state, batch):
        return task.eval_sums(state.params, state.model_state, batch)
    return eval_step
