"""The MLP's `batch_norm` option: BatchNorm before each hidden activation, with running
statistics kept as model state, batch statistics in training and running averages in
evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from bigmodels import models
from bigmodels.models.mlp import mlp_config
from bigmodels.tasks.classify import Classify


def _model(**overrides):
    return models.build(mlp_config(num_classes=3, hidden=(8, 4), batch_norm=True, **overrides))


def test_batch_norm_layers_replace_the_hidden_biases():
    variables = nn.meta.unbox(_model().init(jax.random.key(0), jnp.zeros((2, 5))))
    params, stats = variables["params"], variables["batch_stats"]
    assert set(params) == {"dense_0", "batch_norm_0", "dense_1", "batch_norm_1", "head"}
    assert set(params["dense_0"]) == {"kernel"}             # BatchNorm's shift is the bias
    assert params["batch_norm_1"]["scale"].shape == (4,)
    np.testing.assert_array_equal(stats["batch_norm_0"]["mean"], np.zeros(8))
    np.testing.assert_array_equal(stats["batch_norm_0"]["var"], np.ones(8))
    plain = nn.meta.unbox(models.build(mlp_config(num_classes=3, hidden=(8, 4))).init(
        jax.random.key(0), jnp.zeros((2, 5))))
    assert set(plain) == {"params"} and "bias" in plain["params"]["dense_0"]


def test_train_mode_uses_the_batch_and_eval_mode_the_running_averages():
    model = _model()
    x_BxD = jax.random.normal(jax.random.key(1), (6, 5)) * 3.0 + 2.0
    variables = nn.meta.unbox(model.init(jax.random.key(0), x_BxD))
    # Training: the first example's output depends on the rest of its batch ...
    train_apply = lambda x: model.apply(variables, x, train=True, mutable=["batch_stats"])
    (alone, _), (in_batch, updates) = train_apply(x_BxD[:2]), train_apply(x_BxD)
    assert not np.allclose(alone[0], in_batch[0])
    # ... and the running means move 10% of the way (momentum 0.9) to the batch's.
    batch_mean_H = (x_BxD @ variables["params"]["dense_0"]["kernel"]).mean(axis=0)
    np.testing.assert_allclose(updates["batch_stats"]["batch_norm_0"]["mean"],
                               0.1 * batch_mean_H, rtol=1e-5, atol=1e-6)
    # Evaluation: each example on its own, whatever its batch.
    eval_apply = lambda x: model.apply(variables, x, train=False)
    np.testing.assert_allclose(eval_apply(x_BxD[:2])[0], eval_apply(x_BxD)[0], rtol=1e-6)


def test_the_classify_task_returns_the_updated_statistics():
    task = Classify(_model())
    batch = {"features": jax.random.normal(jax.random.key(2), (4, 5)),
             "label": jnp.array([0, 1, 2, 1])}
    variables = nn.meta.unbox(task.init(jax.random.key(0), batch))
    params = variables.pop("params")
    loss, (_, new_state) = task.loss(params, variables, batch, jax.random.key(3), train=True)
    assert np.isfinite(float(loss))
    assert not np.allclose(new_state["batch_stats"]["batch_norm_0"]["mean"],
                           variables["batch_stats"]["batch_norm_0"]["mean"])
    _, (_, eval_state) = task.loss(params, variables, batch, None, train=False)
    assert eval_state is variables                          # eval changes nothing
