"""Pure train and eval steps. The loop jits them once with explicit shardings."""

import jax
import jax.numpy as jnp
import optax

from bigmodels import optim, regimes as regimes_lib
from bigmodels.regimes import StepContext

MODULE_GRAD_NORM_PREFIX = "grad_norm/"   # per top-level module; reported on a NaN


def make_train_step(task, tx, schedule, seed: int, grad_accum_steps: int = 1,
                    regimes=()):
    """Returns step(state, batch) -> (state, metrics). Metrics are scalar means, plus
    `finite` (False: the update was skipped) and per-module gradient norms.

    The update rule is `regimes.plain_update` unless one of `regimes` replaces it
    (alternating groups, local SGD); every regime's `post_update` and `step_metrics`
    run after it, inside the step."""
    seed_key = jax.random.key(seed)
    update = regimes_lib.update_rule(regimes)
    ctx = StepContext(task, tx, grad_accum_steps)

    def step(state, batch):
        rng = jax.random.fold_in(seed_key, state.step)
        out = update(ctx, state, batch, rng)
        new_state = state.replace(step=state.step + 1, params=out.params,
                                  opt_state=out.opt_state, model_state=out.model_state)
        for regime in regimes:
            new_state = regime.post_update(state, new_state)
        grad_norm = optax.tree.norm(out.grads)
        # A non-finite loss or gradient never reaches the state: the update is dropped
        # here (one select, fused into the update) and the loop applies `nan_policy`.
        finite = jnp.isfinite(out.metrics["loss"]) & jnp.isfinite(grad_norm)
        kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                            (new_state.params, new_state.opt_state, new_state.model_state,
                             new_state.extra),
                            (state.params, state.opt_state, state.model_state, state.extra))
        new_state = new_state.replace(params=kept[0], opt_state=kept[1], model_state=kept[2],
                                      extra=kept[3])
        metrics = {**out.metrics, "grad_norm": grad_norm, "finite": finite,
                   "lr": optim.current_lr(schedule, new_state.opt_state, state.step),
                   **{f"{MODULE_GRAD_NORM_PREFIX}{name}": optax.tree.norm(g)
                      for name, g in out.grads.items()}}
        for regime in regimes:
            metrics.update(regime.step_metrics(state, new_state))
        return new_state, metrics

    return step


def make_eval_step(task):
    """Returns eval_step(state, batch) -> {metric: (sum, weight)}."""
    def eval_step(state, batch):
        return task.eval_sums(state.params, state.model_state, batch)
    return eval_step
