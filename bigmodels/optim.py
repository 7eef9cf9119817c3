"""Optax chains and learning-rate schedules built from `config.optim`.

The chain, in order:
    clip (global norm) -> L1 and coupled L2 added to the gradient -> optimizer core
    -> decoupled weight decay -> learning rate (schedule) -> reduce-on-plateau scale

Regularisers touch matrices only (params with >= 2 dims): decaying norms, biases and
scalars hurts and is not what AdamW papers or nanoGPT do.
"""

import jax
import jax.numpy as jnp
import optax

from bigmodels.errors import BadInput

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "inverse_time", "warmup_cosine", "plateau")


def matrices_mask(params):
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def inverse_time_decay(lr0: float, decay_rate: float):
    """lr0 / (1 + decay_rate * step) (Keras' InverseTimeDecay with decay_steps=1)."""
    return lambda step: lr0 / (1.0 + decay_rate * step)


def build_schedule(cfg, total_steps: int):
    """The step -> learning rate function (reduce-on-plateau scales it further)."""
    if cfg.schedule in ("constant", "plateau"):
        base = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "inverse_time":
        base = inverse_time_decay(cfg.lr, cfg.decay_rate)
    elif cfg.schedule == "warmup_cosine":
        decay_steps = cfg.decay_steps or total_steps
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
            decay_steps=max(decay_steps, cfg.warmup_steps + 1), end_value=cfg.min_lr)
    else:
        raise BadInput(f"optim.schedule: unknown schedule {cfg.schedule!r} {SCHEDULES}")
    if cfg.warmup_steps:
        warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
        return optax.join_schedules([warmup, lambda s: base(s)], [cfg.warmup_steps])
    return base


def _core(cfg):
    if cfg.name in ("sgd",):
        return optax.identity()
    if cfg.name == "momentum":
        return optax.trace(decay=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adagrad":
        return optax.scale_by_rss(initial_accumulator_value=0.1, eps=cfg.eps)
    if cfg.name == "rmsprop":
        return optax.scale_by_rms(decay=cfg.rms_decay, eps=cfg.eps)
    if cfg.name in ("adam", "adamw"):
        return optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    raise BadInput(f"optim.name: unknown optimizer {cfg.name!r} {OPTIMIZERS}")


def add_l1(l1: float, mask):
    """Adds the subgradient of l1 * |w|_1 to the gradient."""
    return optax.masked(optax.stateless(
        lambda g, p: jax.tree.map(lambda gi, pi: gi + l1 * jnp.sign(pi), g, p)), mask)


def build(cfg, total_steps: int) -> tuple[optax.GradientTransformationExtraArgs, callable]:
    """Returns (optimizer, schedule). The optimizer's update takes `value=loss`."""
    schedule = build_schedule(cfg, total_steps)
    parts = []
    if cfg.clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    if cfg.l1 > 0:
        parts.append(add_l1(cfg.l1, matrices_mask))
    if cfg.l2 > 0:
        parts.append(optax.add_decayed_weights(cfg.l2, mask=matrices_mask))
    parts.append(_core(cfg))
    if cfg.weight_decay > 0:
        parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=matrices_mask))
    parts.append(optax.scale_by_learning_rate(schedule))
    if cfg.schedule == "plateau":
        parts.append(optax.contrib.reduce_on_plateau(
            factor=cfg.plateau_factor, patience=cfg.plateau_patience, rtol=cfg.plateau_rtol,
            cooldown=cfg.plateau_cooldown, accumulation_size=cfg.plateau_accumulation))
    return optax.chain(*parts), schedule


def current_lr(schedule, opt_state, step):
    """The learning rate applied at `step`, including any reduce-on-plateau scale."""
    lr = schedule(step)
    plateau = optax.contrib.ReduceLROnPlateauState
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, plateau)):
        if isinstance(leaf, plateau):
            lr = lr * leaf.scale
    return lr
