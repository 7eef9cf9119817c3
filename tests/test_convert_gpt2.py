"""GPT-2 in and out of Hugging Face format, against transformers itself (a random tiny
GPT2LMHeadModel built from a config, no download)."""

import json
import os

import numpy as np
import pytest
import transformers
from safetensors.numpy import load_file, save_file

from bigmodels import generate, train
from bigmodels.convert import export_hf, import_hf
from bigmodels.data import tokenizers as our_tokenizers
from bigmodels.errors import BadInput
from helpers import experiment_config
from hf_oracle import (byte_bpe_tokenizer, hf_greedy, hf_logits as _hf_logits, logits as _logits,
                       ours as _ours, redraw)

VOCAB = 300           # the 256 byte symbols of a byte-level BPE, and merges


def _random_gpt2(directory, **overrides) -> transformers.GPT2LMHeadModel:
    """A tiny GPT-2 with random weights (hf_oracle.redraw), saved to `directory`."""
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2,
                                     n_head=4, bos_token_id=None, eos_token_id=None, **overrides)
    model = transformers.GPT2LMHeadModel(config).eval()
    redraw(model, ("ln_1.weight", "ln_2.weight", "ln_f.weight"))
    model.save_pretrained(directory)
    return model


TOKENS = np.random.RandomState(0).randint(0, VOCAB, (2, 24))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2")
    hf_model = _random_gpt2(root / "hf")
    byte_bpe_tokenizer(root / "hf", VOCAB)
    return hf_model, root, import_hf(str(root / "hf"), str(root / "ours"))


def test_imported_gpt2_gives_the_logits_of_transformers(imported):
    hf_model, _, out = imported
    model, params, config = _ours(out)
    assert config.model.num_layers == 2 and config.model.vocab_size == VOCAB
    theirs = _hf_logits(hf_model, TOKENS)
    assert np.abs(theirs).max() > 1.0           # weights big enough for a wrong map to show
    np.testing.assert_allclose(_logits(model, params, TOKENS), theirs, rtol=0, atol=1e-4)


def test_greedy_decoding_equals_transformers_generate(imported):
    hf_model, _, out = imported
    model, params, _ = _ours(out)
    prompt = TOKENS[:1, :8]
    ours = generate.generate(model, params, prompt, 32, temperature=0.0)
    np.testing.assert_array_equal(ours, hf_greedy(hf_model, prompt, 32))


def test_the_tokenizer_comes_along_and_encodes_like_the_tokenizers_library(imported):
    from tokenizers import Tokenizer
    _, root, out = imported
    ours = our_tokenizers.load(os.path.join(out, "tokenizer.json"))
    reference = Tokenizer.from_file(str(root / "hf" / "tokenizer.json"))
    text = "def main(args):\n    return args + 1\n"
    assert ours.encode(text).tolist() == reference.encode(text).ids
    assert ours.decode(ours.encode(text)) == text
    from bigmodels.sample import sample
    assert sample(out, "def ", max_new_tokens=8, temperature=0.0).startswith("def ")


def test_export_loads_in_transformers_with_equal_logits(imported, tmp_path):
    hf_model, _, out = imported
    hf_dir = export_hf(out, str(tmp_path / "back"))
    assert sorted(os.listdir(hf_dir)) == ["config.json", "model.safetensors", "tokenizer.json"]
    back = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    np.testing.assert_allclose(_hf_logits(back, TOKENS), _hf_logits(hf_model, TOKENS),
                               rtol=0, atol=1e-5)
    # Weight for weight, the file is what transformers saved.
    original = load_file(os.path.join(imported[1], "hf", "model.safetensors"))
    exported = load_file(os.path.join(hf_dir, "model.safetensors"))
    for name, array in exported.items():
        np.testing.assert_array_equal(array, original[name], err_msg=name)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_a_model_trained_here_exports_to_gpt2(tmp_path, scan_layers):
    config = experiment_config("quickstart", total_steps=2, ckpt_every=2, eval_every=2)
    config.model.scan_layers = scan_layers
    run = train.run(config, str(tmp_path / "run"))
    hf_dir = export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))
    back = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    tokens = TOKENS % run.config.model.vocab_size
    model, params, _ = _ours(str(tmp_path / "run"))
    np.testing.assert_allclose(_hf_logits(back, tokens), _logits(model, params, tokens),
                               rtol=0, atol=1e-4)
    # transformers' own pipeline, tokenizer and all, continues a prompt as we do.
    pipe = transformers.pipeline("text-generation", model=hf_dir)
    text = pipe("def ", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    ours = generate.generate(model, params, np.array([list(b"def ")]), 8, temperature=0.0)
    assert text == bytes(ours[0].tolist()).decode("utf-8", errors="replace")


def test_shards_and_an_index_are_read_and_written(imported, tmp_path):
    from bigmodels.convert import safetensors_io
    hf_model, root, out = imported
    params = load_file(os.path.join(root, "hf", "model.safetensors"))
    written = safetensors_io.write_tensors(str(tmp_path), params, max_shard_bytes=40_000)
    assert len(written) > 2 and written[-1] == safetensors_io.INDEX_FILE
    assert dict(safetensors_io.read_tensors(str(tmp_path))).keys() == params.keys()


def test_bad_checkpoints_are_refused_with_one_line(imported, tmp_path):
    hf_model, root, _ = imported
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((root / "hf" / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(BadInput, match="pytorch_model.bin, which is never loaded"):
        import_hf(str(pickled), str(tmp_path / "a"))

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(BadInput, match="model_type 'mamba' has no mapping"):
        import_hf(str(unknown), str(tmp_path / "b"))

    misshapen = tmp_path / "misshapen"
    misshapen.mkdir()
    (misshapen / "config.json").write_text((root / "hf" / "config.json").read_text())
    tensors = load_file(str(root / "hf" / "model.safetensors"))
    tensors["transformer.wpe.weight"] = tensors["transformer.wpe.weight"][:10]
    save_file(tensors, str(misshapen / "model.safetensors"))
    with pytest.raises(BadInput, match=r"transformer.wpe.weight: shape \(10, 32\) does not fit"):
        import_hf(str(misshapen), str(tmp_path / "c"))
    # A fused q/k/v weight whose width cannot split into heads: the same one line.
    tensors = load_file(str(root / "hf" / "model.safetensors"))
    save_file({**tensors, "transformer.h.0.attn.c_attn.weight": np.zeros((32, 95), np.float32)},
              str(misshapen / "model.safetensors"))
    with pytest.raises(BadInput, match=r"c_attn.weight: shape \(32, 95\) does not fit"):
        import_hf(str(misshapen), str(tmp_path / "c"))

    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "config.json").write_text((root / "hf" / "config.json").read_text())
    del tensors["transformer.wpe.weight"], tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, str(missing / "model.safetensors"))
    with pytest.raises(BadInput, match=r"missing block_1/mlp/wi/bias, pos_embed/embedding, "
                                       r"unexpected transformer.extra.weight"):
        import_hf(str(missing), str(tmp_path / "d"))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    save_file(tensors, str(bare / "model.safetensors"))
    with pytest.raises(BadInput, match="config.json: no 'n_embd', which a gpt2 config needs"):
        import_hf(str(bare), str(tmp_path / "e"))
    assert not any(p.name in "abcde" for p in tmp_path.iterdir())      # nothing written


def test_runs_with_no_gpt2_counterpart_are_refused(tmp_path):
    config = experiment_config("quickstart", total_steps=1, ckpt_every=1, eval_every=1)
    config.model.positions = "rotary"
    train.run(config, str(tmp_path / "rotary"))
    # Rotary positions are Llama's, which also needs RMSNorm: the one line names that.
    with pytest.raises(BadInput, match="model.norm='layernorm' has no Llama counterpart"):
        export_hf(str(tmp_path / "rotary"), str(tmp_path / "hf"))
    train.run(experiment_config("digits_mlp", total_steps=1, ckpt_every=1, eval_every=1),
              str(tmp_path / "mlp"))
    with pytest.raises(BadInput, match="model.name='mlp' has no Hugging Face counterpart"):
        export_hf(str(tmp_path / "mlp"), str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists()


def test_the_command_line_refuses_a_pickled_checkpoint_in_one_line(tmp_path):
    import subprocess
    import sys
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"never unpickled")
    done = subprocess.run([sys.executable, "-m", "bigmodels.convert",
                           f"--from_hf={tmp_path / 'hf'}", f"--workdir={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pytorch_model.bin" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_byte_tokenizer_exports_as_a_byte_level_bpe_with_the_same_ids():
    text = "déf naïve(x):\n\treturn x ≥ 0  # ✓ \x00\x7f"
    reference = our_tokenizers.ByteTokenizer()
    hf = our_tokenizers.hf_byte_tokenizer()
    assert hf.get_vocab_size() == 256
    assert hf.encode(text).ids == reference.encode(text).tolist()
    assert hf.decode(reference.encode(text).tolist()) == text
