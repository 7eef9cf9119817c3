"""T5 in and out of Hugging Face format, against transformers itself (random tiny models
built from configs, no download): v1.0 (ReLU MLP, head tied to the shared embedding
and the decoder output scaled by d_model**-0.5) and v1.1 / Flan-T5 (gated GELU, own
head, heads x d_kv != d_model), bucketed relative positions, padded sources, greedy
decoding with the KV cache against `generate`."""

import json
import shutil

import jax
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from bigmodels import decoding, train
from bigmodels.convert import export_hf, hf, import_hf
from bigmodels.errors import BadInput
from bigmodels.nn.positions import relative_position_bucket
from helpers import experiment_config
from hf_oracle import ours, redraw

VOCAB = 97
PAD, EOS, START = 0, 1, 0                  # T5's: the decoder starts from <pad>
_rng = np.random.RandomState(0)
SOURCES = _rng.randint(2, VOCAB, (2, 24))  # longer than the buckets' max distance
LENGTHS = np.array([24, 13])               # the second row padded
DECODER_INPUTS = _rng.randint(0, VOCAB, (2, 24))
FAMILIES = {
    # ReLU MLP, tied head, decoder output scaled; 3 encoder and 2 decoder layers.
    "v1_0": dict(d_kv=8, num_heads=4, d_ff=48, num_layers=3, num_decoder_layers=2,
                 feed_forward_proj="relu"),
    # Gated GELU, untied head, 3 heads x 8 = 24 != d_model 32.
    "v1_1": dict(d_kv=8, num_heads=3, d_ff=40, num_layers=2, num_decoder_layers=2,
                 feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def _random(family: str, directory):
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, dropout_rate=0.0, pad_token_id=PAD,
        eos_token_id=EOS, decoder_start_token_id=START, **FAMILIES[family])
    model = transformers.T5ForConditionalGeneration(config).eval()
    if family == "v1_1":          # transformers 5 ties the head until it differs
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    redraw(model, ("layer_norm.weight",))
    if family == "v1_0":          # logits (scaled by d_model**-0.5) large enough to show
        with torch.no_grad():     # a wrong map
            model.decoder.final_layer_norm.weight.mul_(4.0)
    model.save_pretrained(directory)
    return model


def _source_mask(lengths=LENGTHS, width=SOURCES.shape[1]):
    return (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)


def hf_logits(hf_model, sources=SOURCES, lengths=LENGTHS, decoder_inputs=DECODER_INPUTS):
    with torch.no_grad():
        return hf_model(input_ids=torch.tensor(sources),
                        attention_mask=torch.tensor(_source_mask(lengths, sources.shape[1])),
                        decoder_input_ids=torch.tensor(decoder_inputs)).logits.numpy()


def logits(model, params, sources=SOURCES, lengths=LENGTHS, decoder_inputs=DECODER_INPUTS):
    forward = jax.jit(lambda p, x, n, t: model.apply({"params": p}, x, n, t))
    return np.asarray(forward(params, sources, lengths, decoder_inputs))


@pytest.mark.parametrize("buckets,max_distance", [(32, 128), (8, 20), (64, 256)])
def test_relative_position_buckets_equal_transformers(buckets, max_distance):
    """T5's defaults and others, both directions, far past max_distance."""
    from transformers.models.t5.modeling_t5 import T5Attention
    relative = np.arange(-1000, 1000)
    for bidirectional in (True, False):
        theirs = T5Attention._relative_position_bucket(
            torch.tensor(relative), bidirectional, buckets, max_distance).numpy()
        np.testing.assert_array_equal(
            relative_position_bucket(relative, buckets, max_distance, bidirectional), theirs)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """family -> (transformers model, its saved directory)."""
    root = tmp_path_factory.mktemp("hf")
    return {family: (_random(family, root / family), root / family) for family in FAMILIES}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def imported(request, hf_models, tmp_path_factory):
    hf_model, hf_dir = hf_models[request.param]
    out = import_hf(str(hf_dir), str(tmp_path_factory.mktemp(request.param) / "ours"))
    return request.param, hf_model, out, ours(out)


def test_imported_logits_equal_transformers_with_padded_sources(imported):
    family, hf_model, _, (model, params, config) = imported
    theirs = hf_logits(hf_model)
    assert np.abs(theirs).max() > 1.0           # weights big enough for a wrong map to show
    np.testing.assert_allclose(logits(model, params), theirs, rtol=0, atol=1e-4)
    m = config.model
    assert (m.positions, m.norm, m.use_bias, m.attention_scale) == ("relative", "rmsnorm",
                                                                    False, 1.0)
    v1_0 = family == "v1_0"
    assert m.tie_embeddings == m.scale_decoder_output == v1_0
    assert m.mlp_activation == ("relu" if v1_0 else "geglu")
    assert m.head_dim == (0 if v1_0 else 8) and ("head" in params) != v1_0
    assert params["encoder"]["relative_bias"]["embedding"].shape == (8, m.num_heads)


def test_greedy_decoding_equals_transformers_generate(imported):
    """Both stop at <eos> (id 1) and pad finished rows with <pad> (0); the decoder
    starts from <pad>, as T5's does."""
    _, hf_model, _, (model, params, _) = imported
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor(SOURCES),
                                   attention_mask=torch.tensor(_source_mask()),
                                   do_sample=False, max_new_tokens=32).numpy()
    greedy = jax.jit(lambda p: decoding.greedy(model, p, SOURCES, LENGTHS, 32, START, EOS,
                                               PAD))
    ours_ids = np.asarray(greedy(params))
    assert (theirs[:, 0] == START).all()
    n = theirs.shape[1] - 1                     # fewer than 32 when every row ended
    np.testing.assert_array_equal(ours_ids[:, :n], theirs[:, 1:])
    assert (ours_ids[:, n:] == PAD).all()
    assert len(np.unique(ours_ids)) > 2         # not a degenerate output


def test_export_loads_in_transformers_with_equal_logits(imported, tmp_path):
    family, hf_model, out, _ = imported
    hf_dir = export_hf(out, str(tmp_path / "back"))
    with open(f"{hf_dir}/config.json") as f:
        assert json.load(f)["tie_word_embeddings"] == (family == "v1_0")
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_dir).eval()
    assert type(back) is type(hf_model)
    np.testing.assert_allclose(hf_logits(back), hf_logits(hf_model), rtol=0, atol=1e-5)


def test_a_file_with_only_the_stacks_embeddings_and_no_head(hf_models, tmp_path):
    """transformers 5 saves an untied head that equals the embedding as the embedding
    only, and some files name the embedding by the stacks' copies."""
    shutil.copytree(hf_models["v1_1"][1], tmp_path / "hf")
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    shared = tensors.pop("shared.weight")
    del tensors["lm_head.weight"]
    tensors.update({"encoder.embed_tokens.weight": shared,
                    "decoder.embed_tokens.weight": shared})
    save_file(tensors, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    model, params, _ = ours(import_hf(str(tmp_path / "hf"), str(tmp_path / "ours")))
    np.testing.assert_array_equal(params["head"]["kernel"], shared.T)
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf").eval()
    np.testing.assert_allclose(logits(model, params), hf_logits(back), rtol=0, atol=1e-4)


def test_a_t5_trained_here_exports_when_its_options_map(tmp_path):
    config = experiment_config("t5_seq2seq", total_steps=1, ckpt_every=1, eval_every=1)
    with pytest.raises(BadInput, match="model.positions='learned' has no T5 counterpart"):
        hf.export_family(config.model).hf_from_model(config.model)
    # Relative positions, RMSNorm, no biases: the rest maps (the tied, unscaled head goes
    # out as an own head; the logits' 1/sqrt(head_dim) is folded into q).
    config.model.update(positions="relative", norm="rmsnorm", use_bias=False,
                        mlp_activation="geglu", relative_buckets=8,
                        relative_max_distance=16)
    run = train.run(config, str(tmp_path / "run"))
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(
        export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))).eval()
    assert type(back).__name__ == "T5ForConditionalGeneration"
    model, params, _ = ours(str(tmp_path / "run"))
    vocab = run.config.model.vocab_size
    sources, targets = SOURCES[:, :20] % vocab, DECODER_INPUTS[:, :4] % vocab
    lengths = np.array([20, 9])
    np.testing.assert_allclose(hf_logits(back, sources, lengths, targets),
                               logits(model, params, sources, lengths, targets),
                               rtol=0, atol=1e-4)
    for update, message in ((dict(norm="layernorm"), "model.norm='layernorm'"),
                            (dict(approximate_gelu=False), "approximate_gelu=False"),
                            (dict(tie_embeddings=False, scale_decoder_output=True),
                             "scale_decoder_output=True")):
        changed = run.config.model.copy_and_resolve_references()
        changed.update(update)
        with pytest.raises(BadInput, match=message):
            hf.export_family(changed).hf_from_model(changed)


def test_t5_configs_that_do_not_map_are_refused_in_one_line(hf_models, tmp_path):
    shutil.copytree(hf_models["v1_0"][1], tmp_path / "hf")
    config_path = tmp_path / "hf" / "config.json"
    text = config_path.read_text()
    for needle, replacement, message in (
            ('"feed_forward_proj": "relu"', '"feed_forward_proj": "gated-relu"',
             "feed_forward_proj='gated-relu'"),
            ('"relative_attention_max_distance": 20', '"relative_attention_max_distance": 4',
             "relative_attention_max_distance=4")):
        assert needle in text
        config_path.write_text(text.replace(needle, replacement))
        with pytest.raises(BadInput, match=message):
            import_hf(str(tmp_path / "hf"), str(tmp_path / "out"))
    config_path.write_text(text)
    # Our T5 has no scanned layout.
    with pytest.raises(BadInput, match="scan_layers"):
        import_hf(str(tmp_path / "hf"), str(tmp_path / "out"), scan_layers=True)
    assert not (tmp_path / "out").exists()
