"""LoRA and QLoRA (bigmodels/regimes/lora.py): a tiny GPT base run, then LoRA runs on it."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec as P

from bigmodels import checkpoint, export, models, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.models.gpt import GPT
from bigmodels.nn import lora, quantize
from bigmodels.train import setup
from conftest import ROOT
from helpers import tiny_lm_config

TOKENS = np.random.RandomState(0).randint(0, 40, (2, 16))


def _lora_config(corpus, base, **lora_keys):
    config = tiny_lm_config(corpus, total_steps=3, ckpt_every=3, eval_every=3)
    config.lora.update(rank=4, alpha=8.0, base=base, **lora_keys)
    return config


def _flat(params) -> dict:
    return {n: np.asarray(a) for n, a in tree.flatten(jax.device_get(params)).items()}


@pytest.fixture(scope="module")
def base(tmp_path_factory, corpus):
    workdir = str(tmp_path_factory.mktemp("base"))
    train.run(tiny_lm_config(corpus, total_steps=2, ckpt_every=2), workdir)
    return workdir


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, corpus, base):
    workdir = str(tmp_path_factory.mktemp("lora"))
    return workdir, train.run(_lora_config(corpus, base), workdir)


def _logits(model, params):
    return np.asarray(model.apply({"params": params}, TOKENS))


def test_at_init_the_model_is_its_base_exactly(corpus, base, tmp_path):
    config = _lora_config(corpus, base, base_dtype="float32")
    config.total_steps, config.optim.lr = 1, 0.0         # step 1 at lr 0: the init
    result = train.run(config, str(tmp_path))
    base_params = checkpoint.load(base)
    plain = models.build(result.config.model)
    np.testing.assert_array_equal(_logits(result.task.model, result.state.params),
                                  _logits(plain, base_params))


def test_only_the_adapters_train_and_only_they_have_optimizer_state(lora_run, base):
    _, result = lora_run
    adapters, held = lora.split(result.state.params)
    # The base is bit-unchanged after 3 steps; every adapter B has left zero.
    base_flat = _flat(checkpoint.load(base))
    for name, array in _flat(held).items():
        assert array.tobytes() == base_flat[name].tobytes(), name
    assert all(np.abs(b).max() > 0 for n, b in _flat(adapters).items() if n.endswith("lora_b"))
    # Optimizer state: the adapters' Adam moments, and nothing shaped like a base weight.
    state_names = [n for n, leaf in tree.flatten(result.state.opt_state).items()
                   if np.ndim(leaf) > 0]
    assert state_names and all(n.rsplit("/", 1)[-1] in lora.ADAPTERS for n in state_names)
    assert len(state_names) == 2 * len(_flat(adapters))          # mu and nu


def test_the_export_is_merged_and_equals_the_adapted_model(lora_run, tmp_path):
    workdir, result = lora_run
    out = export.export(workdir, str(tmp_path / "merged"))
    merged = checkpoint.load(out)
    assert not any(n.endswith(lora.ADAPTERS) for n in tree.flatten(merged))
    plain = models.build(checkpoint.read_config(out).model)
    theirs, ours = _logits(plain, merged), _logits(result.task.model, result.state.params)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    assert np.abs(ours - _logits(plain, checkpoint.load(result.config.lora.base))).max() > 1e-4


@pytest.mark.parametrize("kind", ["int8", "nf4"])
def test_qlora_holds_its_base_in_under_0_3x_the_float32_bytes(kind):
    model = GPT(vocab_size=256, num_layers=2, num_heads=4, embed_dim=64, context_length=64)
    tokens = jnp.zeros((1, 64), jnp.int32)
    full = nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)))
    wrapped = lora.LoraModel(model, lora.LoraSpec(4, 8.0, "attn/", base_dtype=kind))
    held = lora.split(nn.meta.unbox(jax.eval_shape(
        lambda: wrapped.init(jax.random.key(0), tokens)))["params"])[1]
    ratio = quantize.nbytes(held) / quantize.nbytes(full["params"])
    assert ratio <= 0.3, ratio


def test_a_qlora_run_trains_on_its_quantized_base_and_resumes(corpus, base, tmp_path):
    config = _lora_config(corpus, base, base_dtype="nf4")
    config.total_steps = 2
    train.run(config, str(tmp_path))
    config.total_steps = 3                    # resumed: the base comes from the checkpoint
    result = train.run(config, str(tmp_path))
    assert int(result.state.step) == 3
    held = lora.split(result.state.params)[1]
    kernel = held["block_0"]["attn"]["qkv"]["kernel"]
    assert kernel["nf4"].dtype == jnp.uint8            # quantized in the train state
    # The base checkpoint's kernel, quantized, and unchanged by 3 steps.
    original = checkpoint.load(base)["block_0"]["attn"]["qkv"]["kernel"]
    np.testing.assert_array_equal(np.asarray(kernel["nf4"]),
                                  np.asarray(quantize.quantize_nf4(original)["nf4"]))
    assert np.abs(np.asarray(quantize.dequantize(kernel)) - original).max() < 0.02
    assert np.isfinite(result.eval_metrics["eval/loss"])
    # The saved checkpoint holds the same quantized base.
    saved = checkpoint.load(str(tmp_path))["block_0"]["attn"]["qkv"]["kernel"]["nf4"]
    np.testing.assert_array_equal(saved, np.asarray(kernel["nf4"]))


def test_adapters_only_checkpoints_resume_as_whole_ones(corpus, base, tmp_path):
    """lora.checkpoint_base=False: the checkpoint holds the adapters (and their optimizer
    state) alone; a resume re-reads the base and continues as a run that saved it all."""
    runs = {}
    for checkpoint_base in (True, False):
        config = _lora_config(corpus, base, checkpoint_base=checkpoint_base)
        workdir = str(tmp_path / str(checkpoint_base))
        config.total_steps = 2
        train.run(config, workdir)
        saved = [n for n in checkpoint.metadata(workdir) if n.startswith("params/")]
        assert all(n.endswith(("/lora_a", "/lora_b")) for n in saved) != checkpoint_base
        config.total_steps = 3                            # resumed
        runs[checkpoint_base] = train.run(config, workdir)
    for whole, alone in zip(jax.tree.leaves(runs[True].state.params),
                            jax.tree.leaves(runs[False].state.params)):
        np.testing.assert_array_equal(np.asarray(whole), np.asarray(alone))
    # Its export re-reads the base too, and merges.
    merged = export.export(str(tmp_path / "False"), str(tmp_path / "merged"))
    reference = export.export(str(tmp_path / "True"), str(tmp_path / "merged_whole"))
    for name, array in _flat(checkpoint.load(reference)).items():
        np.testing.assert_array_equal(_flat(checkpoint.load(merged))[name], array)
    with pytest.raises(BadInput, match="lora.checkpoint_base=False needs lora.base"):
        train.run(_lora_config(corpus, "", checkpoint_base=False), str(tmp_path / "no_base"))
    with pytest.raises(BadInput, match="needs lora.base_dtype=float32"):
        train.run(_lora_config(corpus, base, checkpoint_base=False, base_dtype="nf4"),
                  str(tmp_path / "nf4"))
    assert not (tmp_path / "no_base").exists() and not (tmp_path / "nf4").exists()


def test_adapters_shard_with_the_layers_they_adapt(corpus, tmp_path):
    config = _lora_config(corpus, "")
    config.mesh.update(data=2, fsdp=2, tensor=2)
    shardings = setup.build(config, str(tmp_path)).shardings.params["block_0"]["attn"]["qkv"]
    assert shardings["lora_a"].spec == P("fsdp", None)                  # embed x rank
    assert shardings["lora_b"].spec == P(None, None, "tensor", None)    # rank x 3 x heads x hd


def test_a_target_regex_that_matches_nothing_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-m", "bigmodels.main", "--config=experiments/lora_email.py:tiny",
         f"--workdir={tmp_path / 'run'}", "--config.lora.targets=no_such_layer"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: lora.targets: 'no_such_layer' matches no Dense layer (their paths look "
        "like 'block_0/attn/out')"]
    assert not (tmp_path / "run").exists()


def test_a_base_that_does_not_fit_is_refused_before_anything_is_written(corpus, base,
                                                                        tmp_path):
    config = _lora_config(corpus, base)
    config.model.embed_dim = 64
    with pytest.raises(BadInput, match=r"^lora.base .*: shape mismatch: block_0/"):
        train.run(config, str(tmp_path / "run"))
    config = _lora_config(corpus, "")
    config.init_from = base
    with pytest.raises(BadInput, match="holds no LoRA adapters; a LoRA run reads its base "
                                       "from --config.lora.base"):
        train.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
