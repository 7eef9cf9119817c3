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
`state.opt_state` is {"replicas", "inner", "outer"}.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from bigmodels.errors import BadInput


@dataclasses.dataclass(frozen=True)
class LocalSGD:
    inner: optax.GradientTransformation       # each replica's optimizer (config.optim)
    outer: optax.GradientTransformation       # on the averaged pseudo-gradient
    replicas: int
    inner_steps: int

    def init(self, params):
        stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (self.replicas,) + p.shape),
                               params)
        return {"replicas": stacked, "inner": jax.vmap(self.inner.init)(stacked),
                "outer": self.outer.init(params)}

    def opt_state_shardings(self, abstract_opt_state, param_shardings, mesh):
        """Replica copies and inner states: the param's sharding with `data` in front
        (one replica per data group); the outer state: sharded like the params."""
        replicated = NamedSharding(mesh, P())

        def stacked(s):
            return NamedSharding(mesh, P("data", *s.spec))

        def like_params(tx, state):
            return optax.tree_map_params(tx, lambda _, s: s, state, param_shardings,
                                         transform_non_params=lambda _: replicated)

        one_inner = jax.eval_shape(self.inner.init, jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
            abstract_opt_state["replicas"]))
        return {"replicas": jax.tree.map(stacked, param_shardings),
                "inner": jax.tree.map(stacked, like_params(self.inner, one_inner)),
                "outer": like_params(self.outer, abstract_opt_state["outer"])}


def build(cfg, inner_tx, mesh) -> LocalSGD:
    """`cfg` is config.local_sgd; the replicas are the mesh's data groups."""
    if cfg.outer_lr <= 0 or not 0 <= cfg.outer_momentum < 1:
        raise BadInput(f"local_sgd: outer_lr must be > 0 and outer_momentum in [0, 1), got "
                       f"{cfg.outer_lr}, {cfg.outer_momentum}")
    outer = optax.sgd(cfg.outer_lr, momentum=cfg.outer_momentum or None,
                      nesterov=cfg.nesterov and cfg.outer_momentum > 0)
    return LocalSGD(inner_tx, outer, mesh.shape["data"], cfg.inner_steps)


def update(task, tx: LocalSGD, grad_accum_steps, state, batch, rng, loss_and_grads):
    """One step of every replica on its share of `batch`, then (every `inner_steps`
    steps) the outer step. Returns (params, opt_state, model_state, metrics, grads)."""
    r = tx.replicas
    split = jax.tree.map(lambda x: x.reshape((r, x.shape[0] // r) + x.shape[1:]), batch)
    grad_fn = jax.value_and_grad(
        lambda p, ms, b, k: task.loss(p, ms, b, k, train=True), has_aux=True)

    def replica_step(params, inner_state, replica_batch, key):
        metrics, _, grads = loss_and_grads(grad_fn, params, state.model_state, replica_batch,
                                           key, grad_accum_steps)
        updates, inner_state = tx.inner.update(grads, inner_state, params,
                                               value=metrics["loss"])
        return optax.apply_updates(params, updates), inner_state, metrics, grads

    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(r))
    opt = state.opt_state
    replicas, inner, metrics, grads = jax.vmap(replica_step)(opt["replicas"], opt["inner"],
                                                             split, keys)

    def outer_step(_):
        delta = jax.tree.map(lambda p, q: p - q.mean(0), state.params, replicas)
        updates, outer = tx.outer.update(delta, opt["outer"], state.params)
        params = optax.apply_updates(state.params, updates)
        restart = jax.tree.map(lambda p: jnp.broadcast_to(p, (r,) + p.shape), params)
        return params, restart, outer

    def no_outer_step(_):
        return state.params, replicas, opt["outer"]

    params, replicas, outer = jax.lax.cond((state.step + 1) % tx.inner_steps == 0,
                                           outer_step, no_outer_step, None)
    # For the logs only, and without an all-reduce of gradients: the loss is the mean
    # over replicas, and the gradients are scaled so that their norm is the RMS of the
    # replicas' gradient norms (a scalar reduction).
    metrics = jax.tree.map(jnp.mean, metrics)
    grads = jax.tree.map(lambda g: g / jnp.sqrt(r), grads)
    return params, {"replicas": replicas, "inner": inner, "outer": outer}, \
        state.model_state, metrics, grads
