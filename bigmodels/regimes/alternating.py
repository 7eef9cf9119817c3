"""Alternating updates of parameter groups within one step (a GAN).

For each group in the task's `update_groups` (names of top-level modules), in order,
the task's loss for that group (`task.loss(..., group=name)`) is differentiated with
respect to that group's params only, and only that group's params and optimizer state
change; later groups see the earlier groups' new params. Metric "loss" becomes
"loss_<group>", and "loss" is their sum. The optimizer must be one
`optax.multi_transform` over the groups (optim.build with `groups`), so that
`optim.keep_group` can carry the other groups' states over bit-unchanged.
"""

import jax
import jax.numpy as jnp
import optax

from bigmodels import optim
from bigmodels.regimes.base import Regime, StepContext, Update, loss_and_grads


class AlternatingGroups(Regime):

    name = "alternating_groups"

    def __init__(self, groups: tuple):
        self.groups = tuple(groups)

    def update(self, ctx: StepContext, state, batch, rng) -> Update:
        params, opt_state, model_state = state.params, state.opt_state, state.model_state
        metrics, grads = {}, {}
        for i, group in enumerate(self.groups):
            def group_loss(group_params, ms, b, r, group=group, params=params):
                return ctx.task.loss({**params, group: group_params}, ms, b, r, train=True,
                                     group=group)
            group_metrics, model_state, grads[group] = loss_and_grads(
                jax.value_and_grad(group_loss, has_aux=True), params[group], model_state,
                batch, jax.random.fold_in(rng, i), ctx.grad_accum_steps)
            # The other groups' zero gradients only feed optimizer outputs that are
            # thrown away, so XLA drops that work.
            full_grads = {name: grads[group] if name == group
                          else jax.tree.map(jnp.zeros_like, p) for name, p in params.items()}
            updates, new_opt_state = ctx.tx.update(full_grads, opt_state, params,
                                                   value=group_metrics["loss"])
            params = {**params, group: optax.apply_updates(params[group], updates[group])}
            opt_state = optim.keep_group(new_opt_state, opt_state, group)
            metrics.update({k: v for k, v in group_metrics.items() if k != "loss"})
            metrics[f"loss_{group}"] = group_metrics["loss"]
        metrics["loss"] = sum(metrics[f"loss_{g}"] for g in self.groups)
        return Update(params, opt_state, model_state, metrics, grads)


def from_config(config, task, mesh) -> list[Regime]:
    return [AlternatingGroups(task.update_groups)] if task.update_groups else []

