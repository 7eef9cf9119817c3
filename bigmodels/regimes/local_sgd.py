"""Low-communication training: local SGD / DiLoCo (Douillard et al. 2023) on the one
synchronous SPMD step.

The `data` mesh axis holds R replica groups; `fsdp` and `tensor` shard each replica as
usual. Every replica keeps its own params and inner-optimizer state (stacked on a
leading axis sharded over `data`) and takes `inner_steps` steps on its own share of
each batch, with no communication between replicas. Then one outer step: the
pseudo-gradient is the global params minus the replicas' mean (the only all-reduce),
the outer optimizer (SGD, optionally with Nesterov momentum as in DiLoCo) moves the
global params, and every replica restarts from them. The outer step sits in a
`lax.cond`, so the all-reduce runs only on outer steps.

With inner_steps=1, an SGD inner optimizer and an outer SGD step of lr 1 this is
exactly data-parallel SGD (tests/test_local_sgd.py).

`state.params` are the global params (what eval, checkpoints and exports see);
`state.opt_state` is {"replicas", "inner", "outer"}: the regime wraps the whole
optimizer (`transform_optimizer`), shards that state itself and replaces the update rule.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from bigmodels.errors import BadInput
from bigmodels.regimes.base import Regime, StepContext, Update, loss_and_grads, task_grad_fn


@dataclasses.dataclass(frozen=True)
class LocalSGDOptimizer:
    """The optimizer local SGD trains with: `init` makes the replicas' state; the
    regime's update rule (not `optax.update`) applies `inner` and `outer`."""
    inner: optax.GradientTransformation       # each replica's optimizer (config.optim)
    outer: optax.GradientTransformation       # on the averaged pseudo-gradient
    replicas: int

    def init(self, params):
        stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (self.replicas,) + p.shape),
                               params)
        return {"replicas": stacked, "inner": jax.vmap(self.inner.init)(stacked),
                "outer": self.outer.init(params)}


class LocalSGD(Regime):
    """`cfg` is config.local_sgd; the replicas are the mesh's data groups."""

    name = "local_sgd"

    def __init__(self, cfg, replicas: int):
        if cfg.outer_lr <= 0 or not 0 <= cfg.outer_momentum < 1:
            raise BadInput(f"local_sgd: outer_lr must be > 0 and outer_momentum in [0, 1), "
                           f"got {cfg.outer_lr}, {cfg.outer_momentum}")
        self.outer = optax.sgd(cfg.outer_lr, momentum=cfg.outer_momentum or None,
                               nesterov=cfg.nesterov and cfg.outer_momentum > 0)
        self.replicas = replicas
        self.inner_steps = cfg.inner_steps

    def transform_optimizer(self, tx):
        return LocalSGDOptimizer(tx, self.outer, self.replicas)

    def opt_state_shardings(self, tx, abstract_opt_state, param_shardings, mesh):
        """Replica copies and inner states: the param's sharding with `data` in front
        (one replica per data group); the outer state: sharded like the params."""
        replicated = NamedSharding(mesh, P())

        def stacked(s):
            return NamedSharding(mesh, P("data", *s.spec))

        def like_params(transform, state):
            return optax.tree_map_params(transform, lambda _, s: s, state, param_shardings,
                                         transform_non_params=lambda _: replicated)

        one_inner = jax.eval_shape(tx.inner.init, jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
            abstract_opt_state["replicas"]))
        return {"replicas": jax.tree.map(stacked, param_shardings),
                "inner": jax.tree.map(stacked, like_params(tx.inner, one_inner)),
                "outer": like_params(tx.outer, abstract_opt_state["outer"])}

    def update(self, ctx: StepContext, state, batch, rng) -> Update:
        """One step of every replica on its share of `batch`, then (every `inner_steps`
        steps) the outer step."""
        tx, r = ctx.tx, self.replicas
        split = jax.tree.map(lambda x: x.reshape((r, x.shape[0] // r) + x.shape[1:]), batch)
        grad_fn = task_grad_fn(ctx.task)

        def replica_step(params, inner_state, replica_batch, key):
            metrics, _, grads = loss_and_grads(grad_fn, params, state.model_state,
                                               replica_batch, key, ctx.grad_accum_steps)
            updates, inner_state = tx.inner.update(grads, inner_state, params,
                                                   value=metrics["loss"])
            return optax.apply_updates(params, updates), inner_state, metrics, grads

        keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(r))
        opt = state.opt_state
        replicas, inner, metrics, grads = jax.vmap(replica_step)(opt["replicas"],
                                                                 opt["inner"], split, keys)

        def outer_step(_):
            delta = jax.tree.map(lambda p, q: p - q.mean(0), state.params, replicas)
            updates, outer = tx.outer.update(delta, opt["outer"], state.params)
            params = optax.apply_updates(state.params, updates)
            restart = jax.tree.map(lambda p: jnp.broadcast_to(p, (r,) + p.shape), params)
            return params, restart, outer

        def no_outer_step(_):
            return state.params, replicas, opt["outer"]

        params, replicas, outer = jax.lax.cond((state.step + 1) % self.inner_steps == 0,
                                               outer_step, no_outer_step, None)
        # For the logs only, and without an all-reduce of gradients: the loss is the
        # mean over replicas, and the gradients are scaled so that their norm is the
        # RMS of the replicas' gradient norms (a scalar reduction).
        metrics = jax.tree.map(jnp.mean, metrics)
        grads = jax.tree.map(lambda g: g / jnp.sqrt(r), grads)
        return Update(params, {"replicas": replicas, "inner": inner, "outer": outer},
                      state.model_state, metrics, grads)

    def check(self, abstract_params, abstract_model_state) -> None:
        if abstract_model_state:
            raise BadInput("local_sgd: models with mutable state (BatchNorm) are not "
                           "supported")


def from_config(config, task, mesh) -> list[Regime]:
    if config.local_sgd.inner_steps <= 0:
        return []
    if config.batch_size % (mesh.shape["data"] * config.grad_accum_steps):
        raise BadInput(f"local_sgd: batch_size={config.batch_size} does not split into "
                       f"{mesh.shape['data']} replicas x {config.grad_accum_steps} "
                       f"microbatches")
    return [LocalSGD(config.local_sgd, mesh.shape["data"])]
