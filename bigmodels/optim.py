"""Optax chains and learning-rate schedules built from `config.optim`.

The chain, in order:
    clip (global norm) -> L1 and coupled L2 added to the gradient -> optimizer core
    -> decoupled weight decay -> learning rate (schedule) -> reduce-on-plateau scale

Freezing and LR multipliers are regimes (bigmodels/regimes/finetune.py) that wrap each
group's chain through `transform_group`.

Groups: `groups.<module>.<key>=value` gives a top-level module (a GAN's generator and
discriminator) its own optimizer, through one `optax.multi_transform`; a task that
updates its groups in turn (`update_groups`) uses `keep_group` so that a phase leaves
the other groups' optimizer state exactly as it was.

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


def _build_one(cfg, total_steps: int, transform_group=None):
    """(optimizer, schedule) for one parameter group: the chain in the module docstring,
    passed through `transform_group` (the regimes' freezing, LR multipliers, ...)."""
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
    tx = optax.chain(*parts)
    return (transform_group(tx) if transform_group else tx), schedule


def group_configs(cfg, groups=()) -> dict:
    """{group: its optimizer config}: `cfg` updated with `cfg.groups[group]`, for every
    group in `groups` (a task's update groups) and every group `cfg.groups` names."""
    overrides = dict(cfg.get("groups", {}) or {})
    out = {}
    for name in list(groups) + [g for g in overrides if g not in groups]:
        merged = cfg.copy_and_resolve_references()
        with merged.unlocked():
            del merged["groups"]
        for key, value in dict(overrides.get(name, {})).items():
            if key not in merged or key == "groups":
                raise BadInput(f"optim.groups.{name}.{key}: not an optimizer key")
            merged[key] = value
        out[name] = merged
    return out


def top_level_labels(params):
    """Each param's group: the name of its top-level module (generator, discriminator)."""
    return {name: jax.tree.map(lambda _, n=name: n, sub) for name, sub in params.items()}


def build(cfg, total_steps: int, groups=(), params=None, transform_group=None
          ) -> tuple[optax.GradientTransformationExtraArgs, callable]:
    """Returns (optimizer, schedule). The optimizer's update takes `value=loss`.

    With groups (a task's `update_groups`, or keys of `optim.groups`), each top-level
    module named by a group gets its own optimizer, built from `optim` with that
    group's overrides, through one `optax.multi_transform`; its state is
    `state.inner_states[group]`. Every top-level module must then be in a group, and
    `params` (arrays or shapes) must be given: the labels are a concrete tree, which
    `optax.tree_map_params` (the opt-state shardings) needs. The schedule returned
    (for train/lr) is the first group's. `transform_group(tx) -> tx` wraps each
    group's chain (bigmodels.regimes.build_optimizer)."""
    configs = group_configs(cfg, groups)
    if not configs:
        return _build_one(cfg, total_steps, transform_group)
    built = {name: _build_one(c, total_steps, transform_group) for name, c in configs.items()}
    if params is None:
        raise ValueError("optim.build: optimizer groups need the params' structure")
    check_param_groups(cfg, params, groups)
    tx = optax.multi_transform({name: t for name, (t, _) in built.items()},
                               top_level_labels(params))
    return tx, next(iter(built.values()))[1]


def check_param_groups(cfg, params, groups=()) -> None:
    """BadInput unless the optimizer groups are exactly the top-level modules."""
    names = list(group_configs(cfg, groups))
    if names and set(names) != set(params):
        raise BadInput(f"optim.groups: groups {sorted(names)} must be the model's top-level "
                       f"modules {sorted(params)}")


def keep_group(new_state, old_state, group: str):
    """The multi_transform state with only `group`'s inner state taken from `new_state`:
    the other groups' optimizer states stay exactly as they were."""
    inner = {name: (new_state.inner_states[name] if name == group else old)
             for name, old in old_state.inner_states.items()}
    return new_state._replace(inner_states=inner)


def current_lr(schedule, opt_state, step):
    """The learning rate applied at `step`, including any reduce-on-plateau scale."""
    lr = schedule(step)
    plateau = optax.contrib.ReduceLROnPlateauState
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, plateau)):
        if isinstance(leaf, plateau):
            lr = lr * leaf.scale
    return lr
