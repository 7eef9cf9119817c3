"""The train state and its shape-first, already-sharded initialisation."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct

from bigmodels import sharding


@struct.dataclass
class TrainState:
    """Everything that changes during training. There is no RNG in it: the RNG of step
    t is fold_in(seed_key, t), so a resumed run needs no RNG bookkeeping."""
    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any   # non-param collections, e.g. {"batch_stats": ...}; {} if none
    extra: Any = struct.field(default_factory=dict)   # {regime name: its own state}


def _example(batch):
    """A one-row, all-zero batch of the same structure: enough to trace shapes."""
    return jax.tree.map(lambda x: jnp.zeros((1,) + x.shape[1:], x.dtype), batch)


def _regime_states(regimes, params) -> dict:
    states = {r.name: r.init_state(params) for r in regimes}
    return {name: s for name, s in states.items() if s is not None}


def _create(task, tx, rng, example_batch, regimes=()) -> TrainState:
    variables = nn.meta.unbox(task.init(rng, _example(example_batch)))
    params = variables.pop("params")
    return TrainState(step=jnp.array(0, jnp.int32), params=params,
                      opt_state=tx.init(params), model_state=variables,
                      extra=_regime_states(regimes, params))


def abstract_variables(task, rng, example_batch) -> tuple:
    """(params, model state) as shapes and dtypes, without computing anything."""
    boxed = jax.eval_shape(lambda r: task.init(r, _example(example_batch)), rng)
    variables = dict(nn.meta.unbox(boxed))
    return variables.pop("params"), variables


def abstract_params(task, rng, example_batch):
    """The params' shapes and dtypes, without computing anything."""
    return abstract_variables(task, rng, example_batch)[0]


def state_shardings(task, tx, mesh, rng, example_batch, regimes=(),
                    rules=sharding.LOGICAL_RULES):
    """(abstract state, its NamedShardings), derived from shapes and logical axes only:
    the params' from their logical axes under `rules`; each param's optimizer state
    like the param, unless a regime shards the optimizer state it made."""
    boxed = jax.eval_shape(lambda r: task.init(r, _example(example_batch)), rng)
    var_shardings = sharding.logical_shardings(boxed, mesh, rules)
    abstract = jax.eval_shape(lambda r: _create(task, tx, r, example_batch, regimes), rng)
    replicated = sharding.replicated(mesh)
    param_shardings = var_shardings.pop("params")
    opt_shardings = None
    for regime in regimes:
        opt_shardings = regime.opt_state_shardings(tx, abstract.opt_state, param_shardings,
                                                   mesh) or opt_shardings
    if opt_shardings is None:
        # Frozen params (optim.freeze) have an empty MaskedNode in place of their state.
        masked = lambda x: isinstance(x, optax.MaskedNode)   # noqa: E731
        opt_shardings = optax.tree_map_params(
            tx, lambda state, s: state if masked(state) else s, abstract.opt_state,
            param_shardings, transform_non_params=lambda _: replicated, is_leaf=masked)
    extra = {r.name: r.extra_state_shardings(abstract.extra[r.name], param_shardings, mesh)
             for r in regimes if r.name in abstract.extra}
    shardings = TrainState(step=replicated, params=param_shardings,
                           opt_state=opt_shardings, model_state=var_shardings, extra=extra)
    return abstract, shardings


def init_state(task, tx, rng, example_batch, shardings, regimes=()) -> TrainState:
    """Builds the state directly in its shardings: no unsharded copy ever exists."""
    return jax.jit(lambda r: _create(task, tx, r, example_batch, regimes),
                   out_shardings=shardings)(rng)
