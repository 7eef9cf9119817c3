"""Pure train and eval steps. The loop jits them once with explicit shardings."""

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


def make_train_step(task, tx, schedule, seed: int, grad_accum_steps: int = 1):
    """Returns step(state, batch) -> (state, metrics). Metrics are scalar means, plus
    `finite` (False: the update was skipped) and per-module gradient norms."""
    seed_key = jax.random.key(seed)

    def loss_fn(params, model_state, batch, rng):
        return task.loss(params, model_state, batch, rng, train=True)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state, batch):
        rng = jax.random.fold_in(seed_key, state.step)
        if grad_accum_steps == 1:
            (_, (metrics, model_state)), grads = grad_fn(state.params, state.model_state,
                                                         batch, rng)
        else:
            def accumulate(carry, micro):
                grad_sum, model_state = carry
                mb, i = micro
                (_, (metrics, model_state)), grads = grad_fn(
                    state.params, model_state, mb, jax.random.fold_in(rng, i))
                return (jax.tree.map(jnp.add, grad_sum, grads), model_state), metrics

            zeros = jax.tree.map(jnp.zeros_like, state.params)
            (grad_sum, model_state), metrics = jax.lax.scan(
                accumulate, (zeros, state.model_state),
                (_microbatches(batch, grad_accum_steps), jnp.arange(grad_accum_steps)))
            grads = jax.tree.map(lambda g: g / grad_accum_steps, grad_sum)
            metrics = jax.tree.map(jnp.mean, metrics)

        updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                       value=metrics["loss"])
        params = optax.apply_updates(state.params, updates)
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
