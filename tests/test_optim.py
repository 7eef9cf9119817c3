"""Every optimizer and schedule builds and lowers a loss; regularisers do what they say."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigmodels import optim, regimes
from bigmodels.regimes import finetune
from bigmodels.config import base_config
from bigmodels.errors import BadInput


def _cfg(**kw):
    c = base_config().optim
    c.update(**kw)
    return c


def _regression():
    x = jax.random.normal(jax.random.key(0), (64, 5))
    y = x @ jnp.arange(1.0, 6.0)[:, None]
    params = {"w": jnp.zeros((5, 1)), "b": jnp.zeros((1,))}
    loss = lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2)
    return params, loss


def _build(cfg, steps):
    """The optimizer a run gets: optim.build with the fine-tuning regimes' transforms."""
    return regimes.build_optimizer(cfg, steps, finetune.for_optim(cfg))


def _train(cfg, steps=50):
    params, loss = _regression()
    tx, _ = _build(cfg, steps)
    state = tx.init(params)
    for _ in range(steps):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=value)
        params = optax.apply_updates(params, updates)
    return float(loss(_regression()[0])), float(loss(params)), params


@pytest.mark.parametrize("name,lr", [("sgd", 0.05), ("momentum", 0.02), ("adagrad", 0.5),
                                     ("rmsprop", 0.05), ("adam", 0.1), ("adamw", 0.1)])
@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_every_optimizer_and_schedule_lowers_the_loss(name, lr, schedule):
    cfg = _cfg(name=name, lr=lr, schedule=schedule, decay_rate=0.01, warmup_steps=5,
               plateau_patience=2, plateau_accumulation=1)
    before, after, _ = _train(cfg)
    assert after < 0.5 * before, (name, schedule, before, after)


def test_nesterov_momentum_builds():
    before, after, _ = _train(_cfg(name="momentum", lr=0.02, nesterov=True))
    assert after < 0.5 * before


def test_inverse_time_decay_matches_formula():
    sched = optim.build_schedule(_cfg(schedule="inverse_time", lr=0.3, decay_rate=0.5), 100)
    for step in [0, 1, 7, 99]:
        assert np.isclose(float(sched(step)), 0.3 / (1 + 0.5 * step))


def test_warmup_cosine_shape():
    sched = optim.build_schedule(_cfg(schedule="warmup_cosine", lr=1.0, warmup_steps=10,
                                      min_lr=0.1), 110)
    assert float(sched(0)) == 0.0
    assert np.isclose(float(sched(10)), 1.0)
    assert np.isclose(float(sched(110)), 0.1)


def test_plateau_reduces_lr_when_loss_stalls():
    cfg = _cfg(name="sgd", lr=1.0, schedule="plateau", plateau_patience=2,
               plateau_accumulation=1, plateau_factor=0.5)
    tx, sched = optim.build(cfg, 10)
    params = {"w": jnp.ones((2, 2))}
    state = tx.init(params)
    for _ in range(6):
        _, state = tx.update(params, state, params, value=jnp.float32(1.0))
    assert float(optim.current_lr(sched, state, 6)) < 1.0


def test_decoupled_weight_decay_and_l1_l2_touch_matrices_only():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    for kw in [dict(weight_decay=0.1), dict(l2=0.1), dict(l1=0.1)]:
        tx, _ = optim.build(_cfg(name="sgd", lr=1.0, **kw), 10)
        updates, _ = tx.update(zero_grads, tx.init(params), params, value=jnp.float32(0))
        np.testing.assert_allclose(updates["w"], -0.1 * np.ones((2, 2)), rtol=1e-6)
        np.testing.assert_allclose(updates["b"], np.zeros(2))


def test_coupled_l2_goes_through_the_optimizer():
    """Coupled L2 is normalised by Adam (unlike decoupled decay): the update is -lr."""
    params = {"w": jnp.full((2, 2), 3.0)}
    tx, _ = optim.build(_cfg(name="adam", lr=0.01, l2=0.1), 10)
    updates, _ = tx.update({"w": jnp.zeros((2, 2))}, tx.init(params), params,
                           value=jnp.float32(0))
    np.testing.assert_allclose(updates["w"], -0.01, rtol=1e-4)


def test_clipping_bounds_the_update():
    params = {"w": jnp.zeros((3, 3))}
    tx, _ = optim.build(_cfg(name="sgd", lr=1.0, clip_norm=1.0), 10)
    updates, _ = tx.update({"w": jnp.full((3, 3), 100.0)}, tx.init(params), params,
                           value=jnp.float32(0))
    assert np.isclose(float(optax.tree.norm(updates)), 1.0, rtol=1e-5)


def test_lr_multipliers_scale_the_matched_updates_only():
    params, loss = _regression()
    grads = jax.grad(loss)(params)
    plain, _ = optim.build(_cfg(name="sgd", lr=0.1), 10)
    scaled, _ = _build(_cfg(name="sgd", lr=0.1, lr_multipliers="^w=0.25,.*=3"), 10)
    base, _ = plain.update(grads, plain.init(params), params)
    out, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(out["w"], 0.25 * base["w"], rtol=1e-6)   # first match wins
    np.testing.assert_allclose(out["b"], 3.0 * base["b"], rtol=1e-6)


def test_frozen_params_never_move_and_carry_no_optimizer_state():
    cfg = _cfg(name="adam", lr=0.1, freeze="^b$")
    _, _, params = _train(cfg)
    assert float(params["b"][0]) == 0.0 and float(jnp.abs(params["w"]).sum()) > 0
    tx, _ = _build(cfg, 10)
    moments = [x for x in jax.tree.leaves(tx.init(_regression()[0])) if x.ndim >= 1]
    assert [x.shape for x in moments] == [(5, 1), (5, 1)]    # Adam's mu and nu of w only


@pytest.mark.parametrize("key,value,match", [
    ("freeze", "enc(", "optim.freeze: bad regex"),
    ("lr_multipliers", "encoder/", "optim.lr_multipliers: 'encoder/' is not regex=factor"),
    ("lr_multipliers", "encoder/=fast", "optim.lr_multipliers: 'encoder/=fast'"),
])
def test_bad_freeze_or_multiplier_is_refused(key, value, match):
    with pytest.raises(BadInput, match=match):
        _build(_cfg(**{key: value}), 10)
