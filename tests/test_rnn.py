"""Recurrent layers: padding does not leak into valid positions, the LM trains on a
mixed mesh, and cached decoding equals recomputation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from sklearn import metrics

from bigmodels import generate, train
from bigmodels.models.rnn import RNNLM, rnn_config
from bigmodels.nn.recurrent import RecurrentStack
from bigmodels.tasks.classify import apply_model
from helpers import read_metrics, tiny_lm_config


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_valid_outputs(cell, bidirectional):
    stack = RecurrentStack(cell, hidden_dim=8, num_layers=2, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    lengths = np.array([5, 3, 7])
    x = rng.normal(size=(3, 7, 4)).astype(np.float32)
    # Jitted: eager, every primitive compiles on its own, for every shape.
    variables = jax.jit(stack.init)(jax.random.key(0), x, jnp.asarray(lengths))
    apply = jax.jit(stack.apply)
    padded, _ = apply(variables, x, jnp.asarray(lengths))
    noisy = x.copy()
    for i, n in enumerate(lengths):                 # other values in the padding
        noisy[i, n:] = rng.normal(size=noisy[i, n:].shape) * 100
    repadded, _ = apply(variables, noisy, jnp.asarray(lengths))
    for i, n in enumerate(lengths):
        alone, _ = apply(variables, x[i:i + 1, :n])   # the sequence with no padding
        np.testing.assert_allclose(np.asarray(padded[i, :n]), np.asarray(alone[0]),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(padded[i, :n]), np.asarray(repadded[i, :n]))
        assert not np.asarray(padded[i, n:]).any()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_lm_trains_on_a_mixed_mesh(cell, corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=20, log_every=1)
    config.model = rnn_config(cell=cell, embed_dim=16, hidden_dim=32, num_layers=2,
                              context_length=16)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.3
    kernels = [x for x in jax.tree.leaves(result.state.params) if x.ndim == 2]
    assert any(len(x.sharding.device_set) > 1 and not x.sharding.is_fully_replicated
               for x in kernels)                    # the gate kernels are sharded


def test_cached_decoding_equals_recomputation():
    model = RNNLM(vocab_size=11, embed_dim=8, hidden_dim=16, num_layers=2, context_length=32)
    params = model.init(jax.random.key(1), jnp.zeros((2, 5), jnp.int32))["params"]
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    for temperature in (0.0, 1.0):      # 6 tokens: the reference compiles once per length
        cached = generate.generate(model, params, prompt, 6, seed=3, temperature=temperature)
        uncached = generate.generate_uncached(model, params, prompt, 6, seed=3,
                                              temperature=temperature)
        np.testing.assert_array_equal(cached, uncached)
    # The two-layer LSTM decoded: 4 gates a layer, each with an input kernel, a recurrent
    # kernel and one bias.
    expected = (11 * 8                                   # token embedding
                + 4 * (8 * 16 + 16 * 16 + 16)            # layer 0: 8 -> 16
                + 4 * (16 * 16 + 16 * 16 + 16)           # layer 1: 16 -> 16
                + 16 * 11 + 11)                          # head
    assert sum(x.size for x in jax.tree.leaves(nn.meta.unbox(params))) == expected == 3987


def test_lstm_classifier_trains_and_reports_f1(tmp_path, corpus):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("lc", ROOT / "experiments" / "lstm_classify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("tiny")
    # Three easy classes from real text, so that 20 steps visibly learn.
    text = open(corpus).read()[:60_000]
    classes = {"code": text, "upper": text.upper(), "words": " ".join(text.split()[::-1])}
    for name, body in classes.items():
        (tmp_path / f"{name}.txt").write_text(body)
    config.data.path = ",".join(str(tmp_path / f"{n}.txt") for n in classes)
    config.update(total_steps=20, log_every=1, eval_every=20, batch_size=32)
    config.optim.update(lr=1e-2, warmup_steps=0, schedule="constant")
    tmp_path = tmp_path / "run"
    config.mesh.update(data=4, fsdp=2, tensor=1)     # the LMs above take the tensor axis
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.05
    assert result.config.model.num_classes == len(classes)
    # The oracle: scikit-learn's macro-F1 and accuracy of the trained model's own
    # predictions on the eval set (padding rows, of weight 0, left out).
    params = jax.device_get(result.state.params)
    truth, predicted = [], []
    for batch in result.data.eval:
        logits, _ = apply_model(result.task.model, params,
                                jax.device_get(result.state.model_state), batch, None, False)
        keep = np.asarray(batch.get("weight", np.ones(len(batch["label"])))) > 0
        truth.append(np.asarray(batch["label"])[keep])
        predicted.append(np.argmax(np.asarray(logits), -1)[keep])
    truth, predicted = np.concatenate(truth), np.concatenate(predicted)
    assert len(set(predicted.tolist())) > 1                  # not a constant classifier
    assert result.eval_metrics["eval/f1"] == pytest.approx(
        metrics.f1_score(truth, predicted, average="macro"), abs=1e-9)
    assert result.eval_metrics["eval/accuracy"] == pytest.approx(
        metrics.accuracy_score(truth, predicted), abs=1e-6)
    assert read_metrics(str(tmp_path), "eval/f1")[20] == result.eval_metrics["eval/f1"]


def test_macro_f1_matches_its_definition():
    from bigmodels.tasks.classify import macro_f1
    confusion = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])   # rows: true labels
    precision = np.array([5 / 7, 3 / 4, 4 / 5])
    recall = np.array([5 / 6, 3 / 6, 4 / 4])
    expected = np.mean(2 * precision * recall / (precision + recall))
    assert abs(macro_f1(confusion) - expected) < 1e-12
