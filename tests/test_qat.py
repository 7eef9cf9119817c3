"""Quantization-aware training (bigmodels/regimes/qat.py): the forward pass is qwix's
fake quantization, gradients flow, a tiny run trains and quantizes, and the combinations
that cannot work are refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import qwix
from flax import linen as nn

from bigmodels import checkpoint, models, regimes, tasks, train
from bigmodels.config import base_config
from bigmodels.errors import BadInput
from bigmodels.models.gpt import gpt_config
from bigmodels.quantize import quantize
from helpers import experiment_config, read_metrics


def _qat_task(weights="int8", **quant):
    config = base_config()
    config.model = gpt_config(vocab_size=64, num_layers=1, embed_dim=32, num_heads=2,
                              context_length=16, use_bias=False)
    config.quant.update(mode="qat", weights=weights, **quant)
    task = tasks.build(config, models.build(config.model), None)
    built = regimes.build(config, task, None)
    assert [type(r).__name__ for r in built] == ["QAT"]
    return task, regimes.wrap_task(task, built)


def _fake_quantized(params, qtype):
    """Each Dense kernel quantized and dequantized by qwix, one scale per output channel
    (the attention output contracts two axes, heads and head width)."""
    def one(path, w):
        name = "/".join(k.key for k in path)
        if not name.endswith("kernel"):
            return w
        n_in = 2 if name.endswith("attn/out/kernel") else 1
        return qwix.dequantize(qwix.quantize(w, qtype, channelwise_axes=tuple(range(n_in,
                                                                                   w.ndim))))
    return jax.tree_util.tree_map_with_path(one, params)


@pytest.mark.parametrize("weights,qtype", [("int8", jnp.int8), ("int4", jnp.int4)])
def test_the_forward_pass_is_qwix_fake_quantization(weights, qtype):
    task, qat = _qat_task(weights)
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
    params = nn.unbox(qat.init(jax.random.key(0), {"tokens": tokens})["params"])
    # The params stay float and keep the plain model's names.
    assert jax.tree.structure(params) == jax.tree.structure(
        nn.unbox(task.init(jax.random.key(0), {"tokens": tokens})["params"]))
    logits = qat.model.apply({"params": params}, tokens)
    expected = task.model.apply({"params": _fake_quantized(params, qtype)}, tokens)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert float(jnp.abs(logits - task.model.apply({"params": params}, tokens)).max()) > 0


def test_gradients_are_straight_through_and_finite():
    task, qat = _qat_task()
    batch = {"tokens": jax.random.randint(jax.random.key(1), (2, 17), 0, 64)}
    params = nn.unbox(qat.init(jax.random.key(0), batch)["params"])
    loss = lambda p, t: t.loss(p, {}, batch, jax.random.key(2), train=True)[0]  # noqa: E731
    grads = jax.jit(jax.grad(loss), static_argnums=1)(params, qat)
    # Straight through the rounding: about the float model's gradient at the
    # fake-quantized weights (qwix's backward reuses the float operands, so not exactly).
    expected = jax.grad(loss)(_fake_quantized(params, jnp.int8), task)
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
        assert np.abs(g - e).max() < 0.05 * np.abs(e).max()


def test_a_tiny_qat_run_trains_and_quantizes(tmp_path):
    workdir = str(tmp_path / "run")
    config = experiment_config("quickstart", "tiny", sample_at_end="")
    config.quant.update(mode="qat", weights="int8")
    train.run(config, workdir)
    losses = read_metrics(workdir)
    assert all(np.isfinite(v) for v in losses.values())
    assert losses[max(losses)] < losses[min(losses)]
    out = quantize(workdir, str(tmp_path / "int8"))        # --weights from quant.weights
    saved = checkpoint.read_config(out)
    assert (saved.quant.mode, saved.quant.weights) == ("ptq", "int8")


@pytest.mark.parametrize("changes,message", [
    (dict(lora=dict(rank=4)), "cannot train LoRA"),
    (dict(quant=dict(mode="ptq")), "marks a quantized export"),
    (dict(quant=dict(mode="fp8")), "quant.mode: unknown mode"),
    (dict(quant=dict(weights="int2")), "quant.weights: unknown qtype"),
    (dict(quant=dict(include="(")), "quant.include: bad regex"),
    (dict(quant=dict(include="nothing_named_so")), "quant.include="),
])
def test_what_cannot_work_is_refused_in_one_line(changes, message):
    config = base_config()
    config.model = gpt_config(vocab_size=64, num_layers=1, embed_dim=32, num_heads=2,
                              context_length=16)
    config.quant.mode = "qat"
    for group, values in changes.items():
        config[group].update(values)
    task = tasks.build(config, models.build(config.model), None)
    with pytest.raises(BadInput, match=message) as error:
        built = regimes.build(config, task, None)
        task = regimes.wrap_task(task, built)
        abstract = jax.eval_shape(task.init, jax.random.key(0),
                                  {"tokens": jnp.zeros((2, 9), jnp.int32)})
        for regime in built:
            regime.check(nn.unbox(abstract["params"]), {})
    assert "\n" not in str(error.value)
