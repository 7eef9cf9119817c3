"""Post-training quantization with qwix (bigmodels/quant, bigmodels.quantize): error
bounds per qtype, logits of the quantized model, weights held quantized in memory,
bit-exact save and restore, on-disk byte ratios, convolutions, bad input."""

import glob
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from bigmodels import checkpoint, models, quant, tasks
from bigmodels.checkpoint import tree
from bigmodels.config import base_config
from bigmodels.errors import BadInput
from bigmodels.export import export, model_params
from bigmodels.models.cnn import cnn_config
from bigmodels.models.gpt import gpt_config
from bigmodels.quantize import quantize
from helpers import ROOT, train_wide_tiny_quickstart

QMAX = {"int8": 127.5, "int4": 7.5}     # qwix's symmetric bound: absmax maps to qmax + 0.5


def _gpt(vocab=64, embed=32):
    config = base_config()
    config.model = gpt_config(vocab_size=vocab, num_layers=1, embed_dim=embed, num_heads=2,
                              context_length=16, use_bias=False)
    model = models.build(config.model)
    task = tasks.build(config, model, None)
    example = {"tokens": jnp.zeros((2, 9), jnp.int32)}
    params = nn.unbox(task.init(jax.random.key(0), example)["params"])
    return config, model, task, example, params


def _quantized_config(config, spec):
    config = config.copy_and_resolve_references()
    config.quant = ml_collections.ConfigDict(spec.as_config("ptq"))
    return config


def _dequantized(stored):
    """Each {"qvalue", "scale"} of a stored tree as float32 (qvalue * scale)."""
    if isinstance(stored, dict) and set(stored) == {"qvalue", "scale"}:
        return np.asarray(stored["qvalue"]).astype(np.float32) * stored["scale"]
    if isinstance(stored, dict):
        return {k: _dequantized(v) for k, v in stored.items()}
    return stored


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_ptq_error_is_within_half_a_step_per_channel(weights):
    _, _, task, example, params = _gpt()
    stored, notes = quant.quantize(task, params, quant.QuantSpec(weights), example)
    assert notes == []
    flat, floats = tree.flatten(stored), tree.flatten(params)
    kernels = {n[:-len("/qvalue")] for n in flat if n.endswith("/qvalue")}
    # Every Dense kernel and both lookup tables; the norms stay float.
    assert kernels == {n for n in floats if n.endswith(("kernel", "embedding"))}
    for name in kernels:
        q, scale, w = flat[name + "/qvalue"], flat[name + "/scale"], floats[name]
        assert q.dtype == np.dtype(jnp.int8 if weights == "int8" else jnp.int4)
        # One scale per output channel (per row for a table): absmax over the rest.
        reduce = tuple(i for i, n in enumerate(scale.shape) if n == 1)
        absmax = np.max(np.abs(w), axis=reduce, keepdims=True)
        np.testing.assert_allclose(scale, absmax / QMAX[weights], rtol=1e-6)
        error = np.abs(q.astype(np.float32) * scale - w)
        assert np.all(error <= 0.5 * absmax / QMAX[weights] * (1 + 1e-4)), name


@pytest.mark.parametrize("weights,activations,tolerance", [
    ("int8", "", 0.03), ("int8", "int8", 0.03), ("int4", "", 0.25)])
def test_quantized_logits_close_to_float32_and_weights_stay_quantized(weights, activations,
                                                                      tolerance):
    config, model, task, example, params = _gpt()
    spec = quant.QuantSpec(weights, activations)
    stored, _ = quant.quantize(task, params, spec, example)
    served_model, held = quant.serving(_quantized_config(config, spec), model, stored)
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
    logits = jax.jit(served_model.apply)({"params": held}, tokens)
    reference = model.apply({"params": params}, tokens)
    scale = float(jnp.abs(reference).max())
    assert float(jnp.abs(logits - reference).max()) < tolerance * scale
    if not activations:
        # Weights only: exactly the float model on the dequantized weights.
        dequantized = model.apply({"params": _dequantized(stored)}, tokens)
        np.testing.assert_allclose(logits, dequantized, atol=1e-5 * scale)
    # Held quantized: integer values and scales, no float copy of a weight.
    leaves = jax.tree.leaves(held)
    ints = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.integer)]
    assert len(ints) == 6 and all(str(x.dtype) == weights for x in ints)
    float_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    assert sum(x.nbytes for x in leaves) < 0.3 * float_bytes


def test_unquantized_runs_are_served_unchanged():
    config, model, _, _, params = _gpt()
    assert quant.serving(config, model, params) == (model, params)
    del config["quant"]                              # a run from before the quant block
    assert quant.serving(config, model, params) == (model, params)


def test_convolutions_stay_float_without_activations_and_are_w8a8_with_them():
    config = base_config(task="classify")
    config.model = cnn_config(num_classes=3, channels=(4,), dense=8, image_size=8)
    model = models.build(config.model)
    task = tasks.build(config, model, None)
    example = {"image": jnp.zeros((2, 8, 8, 1)), "label": jnp.zeros((2,), jnp.int32)}
    params = nn.unbox(task.init(jax.random.key(0), example)["params"])
    conv = [n for n in tree.flatten(params) if n.endswith("kernel") and
            tree.flatten(params)[n].ndim == 4]
    assert len(conv) == 1
    stored, notes = quant.quantize(task, params, quant.QuantSpec("int8"), example)
    assert len(notes) == 1 and "--activations=int8" in notes[0]
    assert tree.flatten(stored)[conv[0]].dtype == np.float32
    stored, notes = quant.quantize(task, params, quant.QuantSpec("int8", "int8"), example)
    assert notes == [] and tree.flatten(stored)[conv[0] + "/qvalue"].dtype == np.int8
    served, held = quant.serving(_quantized_config(config, quant.QuantSpec("int8", "int8")),
                                 model, stored)
    images = jax.random.uniform(jax.random.key(2), (4, 8, 8, 1))
    logits = served.apply({"params": held}, images)
    reference = model.apply({"params": params}, images)
    assert float(jnp.abs(logits - reference).max()) < 0.05 * float(jnp.abs(reference).max())


@pytest.mark.parametrize("spec,key", [
    (quant.QuantSpec("int3"), "--weights"), (quant.QuantSpec("int8", "int4"), "--activations"),
    (quant.QuantSpec("int8", include="(block"), "--include"),
    (quant.QuantSpec("int8", exclude="[a-"), "--exclude")])
def test_bad_specs_name_the_flag(spec, key):
    with pytest.raises(BadInput, match=f"^{key}: "):
        quant.check(spec, prefix="--")


# --- a run, its exports and their bytes --------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_wide_tiny_quickstart(str(tmp_path_factory.mktemp("run")))


def _bytes(directory) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(directory, "**"),
                                                     recursive=True) if os.path.isfile(p))


def test_quantized_exports_are_small_restore_bit_exact_and_serve(run, tmp_path):
    f32 = export(run, str(tmp_path / "f32"))
    params = model_params(run)
    config = checkpoint.read_config(run)
    task = tasks.build(config, models.build(config.model), None)
    example = {"tokens": jnp.zeros((2, 9), jnp.int32)}
    ratios = {}
    for weights in ("int8", "int4"):
        out = quantize(run, str(tmp_path / weights), weights=weights)
        ratios[weights] = _bytes(out) / _bytes(f32)
        saved = checkpoint.read_config(out)
        assert saved.quant.mode == "ptq" and saved.quant.weights == weights
        # Restored bit for bit: the same values and scales as quantizing in memory.
        expected, _ = quant.quantize(task, params, quant.QuantSpec(weights), example)
        restored = tree.flatten(model_params(out))
        assert set(restored) == set(tree.flatten(expected))
        for name, x in tree.flatten(expected).items():
            assert restored[name].dtype == x.dtype, name
            np.testing.assert_array_equal(np.asarray(restored[name]).astype(np.float32),
                                          np.asarray(x).astype(np.float32), err_msg=name)
        model, held = quant.serving(saved, models.build(saved.model), model_params(out))
        tokens = jnp.arange(32)[None] % 256
        logits = model.apply({"params": held}, tokens)
        reference = models.build(config.model).apply({"params": params}, tokens)
        assert float(jnp.abs(logits - reference).max()) < 0.3 * float(jnp.abs(reference).max())
    assert ratios["int8"] <= 0.3 and ratios["int4"] <= 0.17, ratios
    # export --dtype=int8 is the same code path: the same arrays.
    via_export = export(run, str(tmp_path / "export-int8"), dtype="int8")
    for name, x in tree.flatten(checkpoint.load(str(tmp_path / "int8"))).items():
        np.testing.assert_array_equal(tree.flatten(checkpoint.load(via_export))[name], x)


def test_quantizing_a_quantized_export_exits_2_and_writes_nothing(run, tmp_path):
    quantized = quantize(run, str(tmp_path / "q"), weights="int8")
    out = tmp_path / "again"
    result = subprocess.run(
        [sys.executable, "-m", "bigmodels.quantize", f"--workdir={quantized}",
         f"--out={out}", "--weights=int4"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "already quantized" in lines[0], result.stderr
    assert not out.exists() and not list(tmp_path.glob(".again*"))


def test_bad_flags_raise_bad_input_and_write_nothing(run, tmp_path):
    out = str(tmp_path / "x")
    for kwargs, key in [(dict(weights="int2"), "--weights"), (dict(), "--weights"),
                        (dict(weights="int8", include="("), "--include")]:
        with pytest.raises(BadInput, match=f"^{key}: "):
            quantize(run, out, **kwargs)
    assert not os.path.exists(out)
