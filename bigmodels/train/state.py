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


def _example(batch):
    """A one-row, all-zero batch of the same structure: enough to trace shapes."""
    return jax.tree.map(lambda x: jnp.zeros((1,) + x.shape[1:], x.dtype), batch)


def _create(task, tx, rng, example_batch) -> TrainState:
    variables = nn.meta.unbox(task.init(rng, _example(example_batch)))
    params = variables.pop("params")
    return TrainState(step=jnp.array(0, jnp.int32), params=params,
                      opt_state=tx.init(params), model_state=variables)


def abstract_params(task, rng, example_batch):
    """The params' shapes and dtypes, without computing anything."""
    boxed = jax.eval_shape(lambda r: task.init(r, _example(example_batch)), rng)
    return nn.meta.unbox(boxed)["params"]


def state_shardings(task, tx, mesh, rng, example_batch):
    """(abstract state, its NamedShardings), derived from shapes and logical axes only."""
    boxed = jax.eval_shape(lambda r: task.init(r, _example(example_batch)), rng)
    var_shardings = sharding.logical_shardings(boxed, mesh)
    abstract = jax.eval_shape(lambda r: _create(task, tx, r, example_batch), rng)
    replicated = sharding.replicated(mesh)
    param_shardings = var_shardings.pop("params")
    # Frozen params (optim.freeze) have an empty MaskedNode in place of their state.
    masked = lambda x: isinstance(x, optax.MaskedNode)   # noqa: E731
    if hasattr(tx, "opt_state_shardings"):       # local SGD: replicas stacked over `data`
        opt_shardings = tx.opt_state_shardings(abstract.opt_state, param_shardings, mesh)
    else:
        opt_shardings = optax.tree_map_params(
            tx, lambda state, s: state if masked(state) else s, abstract.opt_state,
            param_shardings, transform_non_params=lambda _: replicated, is_leaf=masked)
    shardings = TrainState(step=replicated, params=param_shardings,
                           opt_state=opt_shardings, model_state=var_shardings)
    return abstract, shardings


def init_state(task, tx, rng, example_batch, shardings) -> TrainState:
    """Builds the state directly in its shardings: no unsharded copy ever exists."""
    return jax.jit(lambda r: _create(task, tx, r, example_batch), out_shardings=shardings)(rng)
