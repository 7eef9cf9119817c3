"""ViT (`ViTForImageClassification`) in and out of Hugging Face format, against
transformers itself (a random tiny model built from a config, no download): NHWC
images here, the same images as NCHW pixel values there."""

import numpy as np
import pytest
import torch
import transformers

from bigmodels import train
from bigmodels.convert import export_hf, import_hf
from bigmodels.errors import BadInput
from helpers import experiment_config
from hf_oracle import logits, ours, redraw

IMAGES = np.random.RandomState(0).randn(3, 8, 8, 3).astype(np.float32)      # B x H x W x C


def hf_image_logits(hf_model, images_BxHxWxC):
    with torch.no_grad():
        pixels = torch.tensor(images_BxHxWxC.transpose(0, 3, 1, 2).copy())    # NCHW
        return hf_model(pixel_values=pixels).logits.numpy()


def _random(directory, **overrides):
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=48, num_labels=5, **overrides)
    model = transformers.ViTForImageClassification(config).eval()
    redraw(model, ("layernorm_before.weight", "layernorm_after.weight", "layernorm.weight"))
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit")
    hf_model = _random(root / "hf")
    return hf_model, root, import_hf(str(root / "hf"), str(root / "ours"))


def test_imported_logits_equal_transformers(imported):
    hf_model, _, out = imported
    model, params, config = ours(out)
    theirs = hf_image_logits(hf_model, IMAGES)
    assert np.abs(theirs).max() > 1.0           # weights big enough for a wrong map to show
    np.testing.assert_allclose(logits(model, params, IMAGES), theirs, rtol=0, atol=1e-4)
    assert config.task == "classify" and config.model.num_classes == 5
    assert config.model.num_channels == 3 and not config.model.approximate_gelu
    assert params["pos_embed"].shape == (4, 32)           # patches only: [CLS]'s is folded


def test_the_scanned_layout_gives_the_same_logits(imported, tmp_path):
    hf_model, root, _ = imported
    out = import_hf(str(root / "hf"), str(tmp_path / "scanned"), scan_layers=True)
    model, params, config = ours(out)
    assert config.model.scan_layers and "blocks" in params
    np.testing.assert_allclose(logits(model, params, IMAGES), hf_image_logits(hf_model, IMAGES),
                               rtol=0, atol=1e-4)
    back = transformers.ViTForImageClassification.from_pretrained(
        export_hf(out, str(tmp_path / "back"))).eval()
    np.testing.assert_allclose(hf_image_logits(back, IMAGES), hf_image_logits(hf_model, IMAGES),
                               rtol=0, atol=1e-5)


def test_export_loads_in_transformers_with_equal_logits(imported, tmp_path):
    hf_model, _, out = imported
    back = transformers.ViTForImageClassification.from_pretrained(
        export_hf(out, str(tmp_path / "back"))).eval()
    np.testing.assert_allclose(hf_image_logits(back, IMAGES), hf_image_logits(hf_model, IMAGES),
                               rtol=0, atol=1e-5)
    # [CLS]'s position went into the token and comes back as zero.
    assert not back.vit.embeddings.position_embeddings[0, 0].any()


def test_a_vit_trained_here_on_digits_exports_to_transformers(tmp_path):
    config = experiment_config("digits_vit", total_steps=2, ckpt_every=2, eval_every=2)
    train.run(config, str(tmp_path / "run"))
    back = transformers.ViTForImageClassification.from_pretrained(
        export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))).eval()
    assert back.config.num_channels == 1 and back.config.num_labels == 10
    model, params, _ = ours(str(tmp_path / "run"))
    digits = np.random.RandomState(1).randn(4, 8, 8, 1).astype(np.float32)
    # Two steps leave the logits small (about 0.04): a tolerance far below them.
    np.testing.assert_allclose(hf_image_logits(back, digits), logits(model, params, digits),
                               rtol=0, atol=1e-6)


def test_vit_configs_that_do_not_map_are_refused_in_one_line(imported, tmp_path):
    _, root, _ = imported
    text = (root / "hf" / "config.json").read_text()
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "model.safetensors").symlink_to(root / "hf" / "model.safetensors")
    for needle, replacement, message in (
            ('"hidden_act": "gelu"', '"hidden_act": "relu"', "hidden_act='relu'"),
            ('"qkv_bias": true', '"qkv_bias": false', "qkv_bias=False"),
            ('"image_size": 8', '"image_size": [8, 16]', r"image_size=\[8, 16\]"),
            ('"ViTForImageClassification"', '"ViTForMaskedImageModeling"', "architectures")):
        assert needle in text
        (tmp_path / "hf" / "config.json").write_text(text.replace(needle, replacement))
        with pytest.raises(BadInput, match=message):
            import_hf(str(tmp_path / "hf"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
