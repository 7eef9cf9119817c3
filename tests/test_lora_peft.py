"""A LoRA run's adapters through `--to_peft` load in the peft library over the base
exported with `--to_hf`, and give our logits; `--to_hf` of the run (merged) does too."""

import json
import os
import subprocess
import sys

import numpy as np
import peft
import pytest
import torch
import transformers

from bigmodels import export, train
from bigmodels.convert import export_hf
from bigmodels.convert.peft import export_peft
from bigmodels.errors import BadInput
from conftest import ROOT
from helpers import tiny_lm_config

TOKENS = np.random.RandomState(0).randint(0, 40, (2, 16))


def _hf_logits(model):
    with torch.no_grad():
        return model(torch.tensor(TOKENS)).logits.numpy()


# family: (model overrides, LoRA targets, an HF module that must be adapted, one that
# must not, peft's fan_in_fan_out).
FAMILIES = {
    # GPT-2's Conv1D weights are (in, out); its fused c_attn is one module.
    "gpt2": ({}, "attn/(qkv|out)|mlp/wo", "transformer.h.1.mlp.c_proj",
             "transformer.h.1.mlp.c_fc", True),
    # Llama's nn.Linear weights are (out, in); our fused q/kv and gate/up kernels go out
    # as their parts (q_proj; k_proj and v_proj; gate_proj and up_proj).
    "llama": (dict(positions="rotary", norm="rmsnorm", use_bias=False, num_kv_heads=2,
                   mlp_activation="swiglu", tie_embeddings=False),
              "attn/(q|kv)|mlp/wi", "model.layers.1.mlp.up_proj",
              "model.layers.1.self_attn.o_proj", False),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def runs(request, tmp_path_factory, corpus):
    overrides, targets, *expected = FAMILIES[request.param]
    root = tmp_path_factory.mktemp(f"peft_{request.param}")
    base = str(root / "base")
    config = tiny_lm_config(corpus, total_steps=2, ckpt_every=2)
    config.model.update(overrides)
    train.run(config, base)
    config = tiny_lm_config(corpus, total_steps=3, ckpt_every=3, eval_every=3)
    config.model.update(overrides)
    # A large scale and rate, so the adapters move the logits far more than the tolerance.
    config.lora.update(rank=4, alpha=32.0, base=base, targets=targets)
    config.optim.lr = 3e-2
    lora_run = str(root / "lora")
    return root, base, lora_run, train.run(config, lora_run), expected


def test_the_peft_export_loads_in_peft_with_our_logits(runs):
    root, base, lora_run, result, (adapted, not_adapted, fan_in_fan_out) = runs
    out = root / "adapters"
    done = subprocess.run([sys.executable, "-m", "bigmodels.convert", f"--to_peft={out}",
                           f"--workdir={lora_run}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["adapter_config.json", "adapter_model.safetensors"]
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == base
    assert adapter_config["fan_in_fan_out"] is fan_in_fan_out and adapter_config["r"] == 4
    assert adapted in adapter_config["target_modules"]
    assert not_adapted not in adapter_config["target_modules"]

    hf_base = transformers.AutoModelForCausalLM.from_pretrained(
        export_hf(base, str(root / "hf_base"))).eval()
    before = _hf_logits(hf_base)
    adapted = peft.PeftModel.from_pretrained(hf_base, str(out)).eval()
    theirs = _hf_logits(adapted)
    ours = np.asarray(result.task.model.apply({"params": result.state.params}, TOKENS))
    assert np.abs(ours - before).max() > 0.05             # the adapters matter
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)

    # --to_hf on the LoRA run, or on its export, writes the merged model: no peft needed.
    for source, name in ((lora_run, "hf_run"), (export.export(lora_run, str(root / "merged")),
                                                "hf_export")):
        hf_merged = transformers.AutoModelForCausalLM.from_pretrained(
            export_hf(source, str(root / name))).eval()
        np.testing.assert_allclose(_hf_logits(hf_merged), ours, rtol=0, atol=1e-4)
    # Sampling from the run reads the merged model too.
    from bigmodels.sample import sample
    assert (sample(lora_run, "de", max_new_tokens=8, temperature=0.0)
            == sample(str(root / "merged"), "de", max_new_tokens=8, temperature=0.0))


def test_to_peft_refuses_a_run_without_adapters(runs, tmp_path):
    _, base, _, _, _ = runs
    with pytest.raises(BadInput, match="is not a LoRA run"):
        export_peft(base, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
