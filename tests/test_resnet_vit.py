"""ResNet (BatchNorm state in the train state) and ViT on digits: both train on a mixed
mesh; BatchNorm's statistics are those of the global batch however it is sharded,
change in training only, and eval reads the running averages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from bigmodels import train
from bigmodels.models.resnet import ResNet
from bigmodels.models.vit import ViT, patchify
from bigmodels.tasks.classify import Classify
from helpers import experiment_config, read_metrics


def _smoke(tmp_path, name, lr, steps=20, drop=0.3, augment=True, **model):
    config = experiment_config(name)
    config.update(total_steps=steps, log_every=1, eval_every=steps, ckpt_every=steps,
                  batch_size=32)
    config.model.update(model)
    config.data.augment = augment
    config.optim.update(lr=lr, warmup_steps=0, schedule="constant")
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(steps - 4, steps + 1)]) < losses[1] - drop
    assert {"eval/accuracy", "eval/f1"} <= set(result.eval_metrics)
    return result


def test_resnet_trains_on_a_mixed_mesh_and_keeps_batch_stats(tmp_path):
    # Global average pooling leaves a small ResNet slow to start: 20 steps need lr 1e-2.
    result = _smoke(tmp_path, "digits_resnet", 1e-2, stem=8, stages=(8, 16), blocks=1)
    stats = result.state.model_state["batch_stats"]
    assert set(stats) >= {"stem_bn", "stage1_block0_proj_bn"}
    assert not np.allclose(stats["stem_bn"]["mean"], 0)          # moved from its init
    conv = result.state.params["stage1_block0_conv2"]["kernel"]    # 3 x 3 x 16 x 16
    assert conv.sharding.spec[2:] == ("fsdp", "tensor")


def test_vit_trains_on_a_mixed_mesh(tmp_path):
    # A ViT starts slower still: attention is near uniform at init, so [CLS] first reads
    # little more than the mean patch. 60 steps (compiling dominates the time anyway),
    # unshifted images (the shifts slow the start further).
    _smoke(tmp_path, "digits_vit", 3e-3, steps=60, drop=0.15, augment=False, embed_dim=32,
           num_layers=2, num_heads=4, mlp_dim=64, dropout=0.0)


def _one_step(tmp_path, name, devices, mesh):
    config = experiment_config("digits_resnet")
    config.update(total_steps=1, log_every=1, eval_every=1, ckpt_every=1, batch_size=16)
    # SGD: an update continuous in the gradient, so reduction-order noise stays noise
    # (Adam's first step is about lr * sign(g), which flips on near-zero gradients).
    config.optim.update(name="sgd", lr=0.1, warmup_steps=0, schedule="constant")
    config.mesh.update(mesh)
    return train.run(config, str(tmp_path / name), devices=devices)


def test_batch_norm_uses_the_global_batch_on_any_number_of_devices(tmp_path):
    one = _one_step(tmp_path, "one", jax.devices()[:1], dict(data=1, fsdp=1, tensor=1))
    eight = _one_step(tmp_path, "eight", jax.devices(), dict(data=2, fsdp=2, tensor=2))
    assert len(eight.state.params["head"]["kernel"].sharding.device_set) == 8
    # Per-device statistics (4 rows each) would differ from the global ones by far more.
    for a, b in zip(jax.tree.leaves(one.state.model_state),
                    jax.tree.leaves(eight.state.model_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)
    for key in ("eval/loss", "eval/accuracy"):
        np.testing.assert_allclose(one.eval_metrics[key], eight.eval_metrics[key],
                                   atol=1e-6, rtol=1e-6)


@pytest.fixture(scope="module")
def resnet_task():
    task = Classify(ResNet(num_classes=10, stem=4, stages=(4, 8), blocks=1))
    images = jax.random.normal(jax.random.key(1), (8, 8, 8, 1))
    batch = {"image": images, "label": jnp.arange(8) % 10}
    variables = nn.meta.unbox(task.init(jax.random.key(0), batch))
    params = variables.pop("params")
    return task, params, variables, batch


def test_batch_stats_change_in_training_and_not_at_eval(resnet_task):
    task, params, state, batch = resnet_task
    _, (_, trained) = task.loss(params, state, batch, jax.random.key(2), train=True)
    assert jax.tree.structure(trained) == jax.tree.structure(state)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(trained),
                                                     jax.tree.leaves(state))]
    assert all(moved)
    _, (_, after_eval) = task.loss(params, state, batch, None, train=False)
    assert after_eval is state


def test_eval_uses_running_averages_not_the_batch(resnet_task):
    task, params, state, batch = resnet_task
    full, _ = task._logits(params, state, batch, None, False)
    alone, _ = task._logits(params, state, jax.tree.map(lambda x: x[:1], batch), None, False)
    np.testing.assert_allclose(full[:1], alone, atol=1e-6)        # rows do not interact
    shifted = jax.tree.map(lambda x: x + 1.0, state)
    other, _ = task._logits(params, shifted, batch, None, False)
    assert not np.allclose(full, other)                            # the averages are used


def _xla_forward_flops(model, images):
    variables = nn.meta.unbox(model.init(jax.random.key(0), images))
    analysis = jax.jit(lambda v: model.apply(v, images)).lower(variables).compile() \
        .cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return model.train_flops_per_token(variables["params"]) / 3, \
        analysis["flops"] / images.shape[0]


def test_flop_estimates_are_close_to_xla():
    images = jnp.zeros((4, 8, 8, 1))
    # 3x3 SAME convs: the estimate counts the taps over the zero padding, which XLA
    # skips (up to a third of them on a 4x4 map); BatchNorm adds a little on XLA's side.
    estimate, counted = _xla_forward_flops(ResNet(10, stem=8, stages=(8, 16)), images)
    assert 0.9 * counted <= estimate <= 1.4 * counted
    estimate, counted = _xla_forward_flops(
        ViT(10, embed_dim=32, num_layers=2, num_heads=4, mlp_dim=64), images)
    assert 0.75 * counted <= estimate <= 1.25 * counted


def test_patchify_keeps_each_patch_together():
    image = jnp.arange(16.0).reshape(1, 4, 4, 1)
    patches = patchify(image, 2)
    np.testing.assert_array_equal(patches[0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(patches[0, 3], [10, 11, 14, 15])
