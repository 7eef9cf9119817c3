"""Regimes: what changes how a model trains, plugged into the trainer's declared hooks
(bigmodels/regimes/base.py). A new regime is one module here plus one line in
REGIMES; nothing in bigmodels/train/ changes.

`build(config, task, mesh)` returns the regimes a run uses, in REGIMES order; each
module's `from_config(config, task, mesh)` returns [] when its config keys (or the
task's declared capabilities) do not ask for it.
"""

import functools
import importlib

import optax

from bigmodels import optim
from bigmodels.errors import BadInput
from bigmodels.regimes.base import Regime, RunContext, StepContext, Update, plain_update

# In this order: optimizer transforms nest in it (each wraps the ones before).
REGIMES = (
    "bigmodels.regimes.finetune",        # optim.lr_multipliers, optim.freeze
    "bigmodels.regimes.lora",            # lora.rank > 0
    "bigmodels.regimes.prune",           # prune.target > 0 or prune.structure n:m
    "bigmodels.regimes.qat",             # quant.mode=qat
    "bigmodels.regimes.alternating",     # a task's update_groups (a GAN)
    "bigmodels.regimes.local_sgd",       # local_sgd.inner_steps > 0
    "bigmodels.regimes.distill",         # distill.teacher set
    "bigmodels.regimes.eval_images",     # a task's image_outputs
)


def build(config, task, mesh) -> list[Regime]:
    regimes = []
    for module in REGIMES:
        regimes += importlib.import_module(module).from_config(config, task, mesh)
    replacing = [type(r).__name__ for r in regimes if r.update is not None]
    if len(replacing) > 1:
        raise BadInput(f"regimes {' and '.join(replacing)} both replace the update rule; "
                       f"a run can use only one of them (e.g. local_sgd with a task that "
                       f"updates its groups in turn)")
    return regimes


def wrap_task(task, regimes):
    for regime in regimes:
        task = regime.wrap_task(task)
    return task


def update_rule(regimes):
    """The one regime's replacement update rule, or `plain_update`."""
    return next((r.update for r in regimes if r.update is not None), plain_update)


def build_optimizer(optim_config, total_steps: int, regimes, groups=(), params=None
                    ) -> tuple[optax.GradientTransformation, callable]:
    """(optimizer, schedule): `optim.build` with every regime's `transform_group` on
    each group's chain, then every regime's `transform_optimizer` on the whole."""
    def transform_group(tx):
        return functools.reduce(lambda t, r: r.transform_group(t), regimes, tx)
    tx, schedule = optim.build(optim_config, total_steps, groups, params,
                               transform_group=transform_group)
    for regime in regimes:
        tx = regime.transform_optimizer(tx)
    return tx, schedule


__all__ = ["Regime", "RunContext", "StepContext", "Update", "build", "build_optimizer",
           "plain_update", "update_rule", "wrap_task"]
