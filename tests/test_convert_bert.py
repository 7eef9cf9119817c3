"""BERT in and out of Hugging Face format, against transformers itself (random tiny
models built from configs, no download): BertForMaskedLM and BertForPreTraining into
bert_mlm, BertForSequenceClassification into bert_classifier (with BERT's pooler), with
and without padding; a post-norm bert_mlm trained here exported; the options without a
counterpart refused in one line."""

import json

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from bigmodels import train
from bigmodels.convert import bert, export_hf, hf, import_hf, init_from
from bigmodels.errors import BadInput
from helpers import experiment_config
from hf_oracle import ours, redraw

VOCAB, T = 100, 24
RNG = np.random.RandomState(0)
TOKENS = RNG.randint(0, VOCAB, (2, T))
SEGMENTS = (np.arange(T)[None, :] >= np.array([[10], [14]])).astype(np.int64)
FULL, PADDED = np.array([T, T]), np.array([T, 17])
CLASSES = {"mlm": transformers.BertForMaskedLM, "pretraining": transformers.BertForPreTraining,
           "classifier": transformers.BertForSequenceClassification}


def _random(kind: str, directory):
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=64, type_vocab_size=2,
                                     num_labels=3)
    model = CLASSES[kind](config).eval()
    redraw(model, ("LayerNorm.weight",))
    model.save_pretrained(directory)
    return model


def _valid(lengths, seq_len: int = T):
    return np.arange(seq_len)[None, :] < lengths[:, None]


def hf_logits(hf_model, tokens, lengths, segments=None):
    kwargs = {} if segments is None else {"token_type_ids": torch.tensor(segments)}
    with torch.no_grad():
        out = hf_model(torch.tensor(tokens), attention_mask=torch.tensor(_valid(lengths)).long(),
                       **kwargs)
    return (out.prediction_logits if hasattr(out, "prediction_logits") else out.logits).numpy()


def our_logits(path, tokens, lengths, segments=None):
    model, params, config = ours(path)
    args = (tokens, lengths) if segments is None else (tokens, segments, lengths)
    return np.asarray(model.apply({"params": params}, *args)), config


def _assert_close(kind, a, b, lengths, atol):
    """MLM logits at the valid positions (padded ones are junk on both sides)."""
    if kind == "classifier":
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    else:
        mask = _valid(lengths, a.shape[1])
        np.testing.assert_allclose(a[mask], b[mask], rtol=0, atol=atol)


def _segments(kind):
    return None if kind == "classifier" else SEGMENTS


@pytest.fixture(scope="module", params=sorted(CLASSES))
def imported(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    hf_model = _random(kind, root / "hf")
    if kind == "classifier":         # a pretraining head left in the file is not read
        weights = load_file(root / "hf" / "model.safetensors")
        weights["cls.seq_relationship.weight"] = np.ones((2, 32), np.float32)
        save_file(weights, root / "hf" / "model.safetensors", metadata={"format": "pt"})
    return kind, hf_model, import_hf(str(root / "hf"), str(root / "ours"))


@pytest.mark.parametrize("lengths", [FULL, PADDED], ids=["full", "padded"])
def test_imported_logits_equal_transformers(imported, lengths):
    kind, hf_model, out = imported
    theirs = hf_logits(hf_model, TOKENS, lengths, _segments(kind))
    mine, config = our_logits(out, TOKENS, lengths, _segments(kind))
    assert np.abs(theirs).max() > 1.0           # weights big enough for a wrong map to show
    _assert_close(kind, mine, theirs, lengths, 1e-4)
    assert config.model.name == ("bert_classifier" if kind == "classifier" else "bert_mlm")
    assert config.model.post_norm and config.model.positions == "learned"
    if kind == "classifier":
        assert config.model.num_classes == 3 and config.model.pooling == "pooler"


def test_export_loads_in_transformers_with_equal_logits(imported, tmp_path):
    kind, hf_model, out = imported
    hf_dir = export_hf(out, str(tmp_path / "back"))
    auto = (transformers.AutoModelForSequenceClassification if kind == "classifier"
            else transformers.AutoModelForMaskedLM)
    back = auto.from_pretrained(hf_dir).eval()
    assert type(back).__name__ == ("BertForSequenceClassification" if kind == "classifier"
                                   else "BertForMaskedLM")
    theirs = hf_logits(hf_model, TOKENS, PADDED, _segments(kind))
    mine = hf_logits(back, TOKENS, PADDED, _segments(kind))
    _assert_close(kind, mine, theirs, PADDED, 1e-5)


def test_a_post_norm_bert_mlm_trained_here_exports_to_transformers(tmp_path):
    config = experiment_config("bert_mlm", total_steps=2, ckpt_every=2, eval_every=2)
    config.model.update(positions="learned", post_norm=True)
    run = train.run(config, str(tmp_path / "run"))
    hf_dir = export_hf(str(tmp_path / "run"), str(tmp_path / "hf"))
    back = transformers.AutoModelForMaskedLM.from_pretrained(hf_dir).eval()
    assert json.load(open(f"{hf_dir}/config.json"))["layer_norm_eps"] == 1e-5
    t = run.config.model.context_length
    tokens, segments = TOKENS[:, :t] % run.config.model.vocab_size, SEGMENTS[:, :t]
    lengths = np.array([t, t - 7])
    mine, _ = our_logits(str(tmp_path / "run"), tokens, lengths, segments)
    _assert_close("mlm", mine, hf_logits(back, tokens, lengths, segments), lengths, 1e-4)


def test_models_without_a_bert_counterpart_are_refused_in_one_line():
    mlm = experiment_config("bert_mlm").model                 # rotary, pre-norm
    for update, message in (({}, "model.positions='rotary'"),
                            ({"positions": "learned"}, "model.post_norm=False"),
                            ({"positions": "learned", "post_norm": True, "norm": "rmsnorm"},
                             "model.norm='rmsnorm'")):
        model = mlm.copy_and_resolve_references()
        model.update(update)
        with pytest.raises(BadInput, match=message):
            hf.export_family(model).hf_from_model(model)
    classifier = experiment_config("bert_classify").model
    classifier.update(positions="learned", post_norm=True)     # pooling "cls"
    assert hf.export_family(classifier) is bert.CLASSIFIER
    with pytest.raises(BadInput, match="model.pooling='cls'"):
        bert.CLASSIFIER.hf_from_model(classifier)


def test_bert_configs_that_do_not_map_are_refused_in_one_line(tmp_path):
    root = tmp_path / "source"
    _random("mlm", root / "hf")
    with pytest.raises(BadInput, match="model.scan_layers: not a field of BertMLM"):
        import_hf(str(root / "hf"), str(tmp_path / "scanned"), scan_layers=True)
    original = json.loads((root / "hf" / "config.json").read_text())
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "model.safetensors").write_bytes(
        (root / "hf" / "model.safetensors").read_bytes())
    for update, message in (
            ({"hidden_act": "relu"}, "hidden_act='relu'"),
            ({"is_decoder": True}, "is_decoder=True"),
            ({"position_embedding_type": "relative_key"}, "position_embedding_type="),
            ({"tie_word_embeddings": False}, "tie_word_embeddings=False"),
            ({"architectures": ["BertForTokenClassification"]},
             r"architectures=\['BertForTokenClassification'\] of model_type 'bert'"),
            ({"architectures": ["BertForSequenceClassification"], "problem_type": "regression",
              "id2label": {"0": "score"}}, "problem_type='regression'")):
        (tmp_path / "hf" / "config.json").write_text(json.dumps({**original, **update}))
        with pytest.raises(BadInput, match=message):
            import_hf(str(tmp_path / "hf"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_bert_checkpoint_sets_a_classifier_experiment_to_its_architecture(tmp_path):
    _random("mlm", tmp_path / "hf")
    config = experiment_config("bert_classify")
    config.init_from = f"hf:{tmp_path / 'hf'}"
    resolved, _ = init_from.with_architecture(config)
    model = resolved.model
    assert (model.post_norm, model.positions, model.norm_eps, model.mlp_dim) == (
        True, "learned", 1e-12, 64)
    assert model.pooling == "cls"          # the classifier's own: the MLM has no pooler
