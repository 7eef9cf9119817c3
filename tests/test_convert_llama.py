"""Llama and Qwen2 in and out of Hugging Face format, against transformers itself
(random tiny models built from configs, no download): grouped-query and multi-head
attention, Llama 3's rotary scaling, tied and untied heads, Qwen2's q/k/v biases."""

import os

import numpy as np
import pytest
import transformers

from bigmodels import generate, train
from bigmodels.convert import export_hf, import_hf, init_from
from bigmodels.errors import BadInput
from helpers import experiment_config
from hf_oracle import byte_bpe_tokenizer, hf_greedy, hf_logits, logits, ours, redraw

VOCAB = 97
TOKENS = np.random.RandomState(0).randint(0, VOCAB, (2, 24))
NORMS = ("layernorm.weight", "norm.weight")
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
FAMILIES = {
    # GQA (2 key/value heads for 4 query heads), Llama 3.1's rotary scaling, untied head.
    "llama_gqa": (transformers.LlamaConfig, dict(num_key_value_heads=2, rope_theta=500000.0,
                                                 rope_scaling=LLAMA3_ROPE)),
    # Multi-head (q, k, v fused into one param here), a tied head, another epsilon.
    "llama_mha": (transformers.LlamaConfig, dict(num_key_value_heads=4,
                                                 tie_word_embeddings=True, rms_norm_eps=1e-5)),
    # Qwen2: biases on q, k and v only.
    "qwen2": (transformers.Qwen2Config, dict(num_key_value_heads=2)),
}


def _random(family: str, directory, vocab_size: int = VOCAB):
    config_class, overrides = FAMILIES[family]
    config = config_class(vocab_size=vocab_size, hidden_size=32, intermediate_size=88,
                          num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=64, bos_token_id=None, eos_token_id=None,
                          pad_token_id=None, **overrides)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    redraw(model, NORMS)
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def imported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    hf_model = _random(request.param, root / "hf")
    return request.param, hf_model, root, import_hf(str(root / "hf"), str(root / "ours"))


def test_imported_logits_equal_transformers(imported):
    family, hf_model, _, out = imported
    model, params, config = ours(out)
    theirs = hf_logits(hf_model, TOKENS)
    assert np.abs(theirs).max() > 1.0           # weights big enough for a wrong map to show
    np.testing.assert_allclose(logits(model, params, TOKENS), theirs, rtol=0, atol=1e-4)
    gqa = family != "llama_mha"
    assert ("q" in params["block_0"]["attn"]) == gqa
    assert config.model.tie_embeddings == (family == "llama_mha")


def test_the_scanned_layout_gives_the_same_logits(imported, tmp_path):
    _, hf_model, root, _ = imported
    out = import_hf(str(root / "hf"), str(tmp_path / "scanned"), scan_layers=True)
    model, params, config = ours(out)
    assert config.model.scan_layers and "blocks" in params
    np.testing.assert_allclose(logits(model, params, TOKENS), hf_logits(hf_model, TOKENS),
                               rtol=0, atol=1e-4)


def test_greedy_decoding_equals_transformers_generate(imported):
    _, hf_model, _, out = imported
    model, params, _ = ours(out)
    prompt = TOKENS[:1, :8]
    ours_ids = generate.generate(model, params, prompt, 32, temperature=0.0)
    np.testing.assert_array_equal(ours_ids, hf_greedy(hf_model, prompt, 32))


def test_export_loads_in_transformers_with_equal_logits(imported, tmp_path):
    family, hf_model, _, out = imported
    hf_dir = export_hf(out, str(tmp_path / "back"))
    back = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    assert type(back) is type(hf_model)
    np.testing.assert_allclose(hf_logits(back, TOKENS), hf_logits(hf_model, TOKENS),
                               rtol=0, atol=1e-5)


def test_a_llama_trained_here_exports_and_generates_in_transformers(tmp_path):
    config = experiment_config("quickstart", total_steps=2, ckpt_every=2, eval_every=2)
    config.model.update(positions="rotary", norm="rmsnorm", use_bias=False,
                        mlp_activation="swiglu", num_kv_heads=2, tie_embeddings=False,
                        rope_theta=500000.0)
    run = train.run(config, str(tmp_path / "run"))
    hf_dir = export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))
    back = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    assert type(back).__name__ == "LlamaForCausalLM"
    tokens = TOKENS % run.config.model.vocab_size
    model, params, _ = ours(str(tmp_path / "run"))
    np.testing.assert_allclose(hf_logits(back, tokens), logits(model, params, tokens),
                               rtol=0, atol=1e-4)


def test_llama_configs_that_do_not_map_are_refused_in_one_line(tmp_path):
    hf_model = _random("llama_gqa", tmp_path / "hf")
    config_path = tmp_path / "hf" / "config.json"
    text = config_path.read_text()
    for needle, replacement, message in (
            ('"hidden_act": "silu"', '"hidden_act": "gelu"', "hidden_act='gelu'"),
            ('"rope_type": "llama3"', '"rope_type": "yarn"', "rope_type='yarn'"),
            ('"attention_bias": false', '"attention_bias": true', "attention_bias=True")):
        assert needle in text
        config_path.write_text(text.replace(needle, replacement))
        with pytest.raises(BadInput, match=message):
            import_hf(str(tmp_path / "hf"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and hf_model is not None


def test_init_from_hf_fine_tunes_from_the_checkpoint_in_one_step(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODELS_CACHE", str(tmp_path / "cache"))
    hf_model = _random("llama_gqa", tmp_path / "hf", vocab_size=300)
    byte_bpe_tokenizer(tmp_path / "hf", 300)
    config = experiment_config("quickstart", total_steps=1, ckpt_every=1, eval_every=1)
    config.init_from = f"hf:{tmp_path / 'hf'}"
    config.optim.freeze = ".*"          # one step that changes nothing: params = checkpoint
    resolved = init_from.resolve(config)
    assert resolved.model.num_kv_heads == 2 and resolved.model.positions == "rotary"
    assert resolved.data.tokenizer == f"hf:{tmp_path / 'hf'}"
    assert resolved.model.dropout == config.model.dropout      # the experiment's own
    run = train.run(resolved, str(tmp_path / "run"))
    model, params, _ = ours(str(tmp_path / "run"))
    tokens = TOKENS % 300
    np.testing.assert_allclose(logits(model, params, tokens), hf_logits(hf_model, tokens),
                               rtol=0, atol=1e-4)
    assert run.config.model.vocab_size == 300
    # The conversion is cached: a second resolve reads the same export.
    assert init_from.resolve(config).init_from == resolved.init_from
    assert len(os.listdir(tmp_path / "cache" / "hf_imports")) == 1


def test_init_from_hf_into_a_model_without_the_fields_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODELS_CACHE", str(tmp_path / "cache"))
    _random("llama_gqa", tmp_path / "hf")
    config = experiment_config("digits_mlp")
    config.init_from = f"hf:{tmp_path / 'hf'}"
    with pytest.raises(BadInput, match="model 'mlp' has no field"):
        init_from.resolve(config)
    config.init_from = f"hf:{tmp_path / 'nowhere'}"
    with pytest.raises(BadInput, match="no such directory"):
        init_from.resolve(config)
    assert not (tmp_path / "cache").exists()
