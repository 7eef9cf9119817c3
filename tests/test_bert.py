"""BERT: masking statistics, padding and segments, MLM pretraining on a mixed mesh, and
fine-tuning a classifier from the MLM run with a frozen or slower encoder."""

import importlib.util

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import train
from bigmodels.checkpoint import tree
from bigmodels.data import tokenizers
from bigmodels.data.masked_lm import BERT_SPECIALS, mask_tokens, mlm_batches
from bigmodels.models.bert import BertClassifier, BertMLM
from conftest import ROOT
from helpers import experiment_config, read_metrics


_experiment = experiment_config


def test_mask_tokens_follows_80_10_10_and_spares_specials():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, (400, 500)).astype(np.int32)
    maskable = np.ones_like(tokens, bool)
    maskable[:, :50] = False                              # e.g. [CLS], [SEP], padding
    inputs, selected = mask_tokens(rng, tokens, maskable, mask_id=259, random_vocab=256)
    assert not selected[:, :50].any() and (inputs[:, :50] == tokens[:, :50]).all()
    assert abs(selected[:, 50:].mean() - 0.15) < 0.005
    picked_in, picked = inputs[selected], tokens[selected]
    masked, kept = picked_in == 259, picked_in == picked
    assert abs(masked.mean() - 0.8) < 0.01
    # 10% random tokens, of which 1/256 happen to equal the original.
    assert abs(kept.mean() - (0.1 + 0.1 / 256)) < 0.01
    assert (inputs[~selected] == tokens[~selected]).all()


def test_mlm_rows_are_cls_a_sep_b_sep_with_segments_and_padding():
    tokenizer = tokenizers.build("byte", b"", BERT_SPECIALS)
    ids = np.arange(1000) % 200
    batch = mlm_batches(ids, tokenizer, seq_len=32, global_batch=64, seed=3)[5]
    cls, sep, pad = (tokenizer.id(n) for n in ("[CLS]", "[SEP]", "[PAD]"))
    for row in range(64):
        n = batch["lengths"][row]
        target, segments = batch["targets"][row], batch["segments"][row]
        assert 16 <= n <= 32 and target[0] == cls and target[n - 1] == sep
        assert (target[n:] == pad).all() and batch["weights"][row, n:].sum() == 0
        seps = np.flatnonzero(target == sep)
        assert len(seps) == 2                                    # [SEP] after A and after B
        assert (segments[:seps[0] + 1] == 0).all() and (segments[seps[0] + 1:n] == 1).all()
        text = np.delete(target[:n], [0, *seps])
        start = text[0]
        np.testing.assert_array_equal(text, (start + np.arange(len(text))) % 200)  # A B contiguous
    changed = batch["tokens"] != batch["targets"]
    assert not (changed & (batch["weights"] == 0)).any()         # only selected ones change
    again = mlm_batches(ids, tokenizer, seq_len=32, global_batch=64, seed=3)[5]
    np.testing.assert_array_equal(batch["tokens"], again["tokens"])   # a pure function of i


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_padding_is_ignored_and_segments_matter(positions):
    model = BertMLM(vocab_size=40, num_layers=2, num_heads=2, embed_dim=16, context_length=12,
                    positions=positions, dropout=0.0)
    tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, 36)
    segments = jnp.zeros_like(tokens).at[:, 5:].set(1)
    lengths = jnp.array([8, 12])
    params = model.init(jax.random.key(0), tokens, segments, lengths)
    out = model.apply(params, tokens, segments, lengths)
    junk = tokens.at[0, 8:].set(39)                              # different padding tokens
    out_junk = model.apply(params, junk, segments, lengths)
    np.testing.assert_allclose(out[0, :8], out_junk[0, :8], atol=1e-5)
    np.testing.assert_allclose(out[1], out_junk[1], atol=1e-6)
    other = model.apply(params, tokens, jnp.zeros_like(segments), lengths)
    # Segment B's embedding reaches A's outputs through bidirectional attention.
    assert np.abs(np.asarray(other[:, :5] - out[:, :5])).max() > 1e-5


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_logits_ignore_padding(pooling):
    model = BertClassifier(vocab_size=40, num_layers=1, num_heads=2, embed_dim=16,
                           context_length=12, num_classes=3, pooling=pooling, dropout=0.0)
    tokens = jax.random.randint(jax.random.key(2), (2, 12), 0, 36)
    lengths = jnp.array([7, 12])
    params = model.init(jax.random.key(0), tokens, lengths)
    logits = model.apply(params, tokens, lengths)
    np.testing.assert_allclose(logits, model.apply(params, tokens.at[0, 7:].set(1), lengths),
                               atol=1e-6)
    assert np.abs(np.asarray(logits[0] - model.apply(params, tokens, lengths + 1)[0])).max() > 0


def test_bert_mlm_trains_on_a_mixed_mesh(tmp_path):
    config = _experiment("bert_mlm", total_steps=20, log_every=1)
    config.optim.update(lr=3e-3, warmup_steps=0, schedule="constant")
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.5
    assert {"eval/loss", "eval/accuracy"} <= set(result.eval_metrics)
    assert any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(result.state.params))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bert_mlm"))
    return workdir, train.run(_experiment("bert_mlm"), workdir)


def _encoder(params):
    return {k: np.asarray(v) for k, v in tree.flatten(params).items()
            if k.startswith("encoder/")}


def test_classifier_starts_from_the_mlm_encoder_with_a_fresh_head(pretrained, tmp_path, capsys):
    source, mlm = pretrained
    config = _experiment("bert_classify", init_from=source, total_steps=1)
    config.optim.lr = 0.0
    first = train.run(config, str(tmp_path / "lr0"))
    assert "freshly initialised: classifier/bias, classifier/kernel" in capsys.readouterr().out
    chex.assert_trees_all_equal(_encoder(first.state.params), _encoder(mlm.state.params))
    # Fine-tuning from there lowers the eval loss below the starting point's (the lr-0
    # run's eval), at a constant lr: 6 steps of the 30-step warmup would hardly move.
    config = _experiment("bert_classify", init_from=source)
    config.optim.update(schedule="constant", warmup_steps=0)
    tuned = train.run(config, str(tmp_path / "tuned"))
    assert tuned.eval_metrics["eval/loss"] < first.eval_metrics["eval/loss"] - 0.01, (
        tuned.eval_metrics, first.eval_metrics)


def test_frozen_encoder_stays_put_while_the_head_learns(pretrained, tmp_path):
    source, mlm = pretrained
    config = _experiment("bert_classify", init_from=source)
    config.optim.freeze = "^encoder/"
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    chex.assert_trees_all_equal(_encoder(result.state.params), _encoder(mlm.state.params))
    config.update(total_steps=1)
    config.optim.lr = 0.0
    initial = train.run(config, str(tmp_path / "lr0"))       # the same fresh head, unmoved
    head = tree.flatten(result.state.params)["classifier/kernel"]
    assert float(jnp.abs(head - tree.flatten(initial.state.params)["classifier/kernel"]).max()) > 0
    # No optimizer state for the encoder: Adam's two moments cover the head only.
    moments = [x for x in jax.tree.leaves(result.state.opt_state) if x.ndim >= 1]
    assert sum(x.size for x in moments) == 2 * sum(
        x.size for x in jax.tree.leaves(result.state.params["classifier"]))


def test_encoder_lr_multiplier_slows_the_encoder(pretrained, tmp_path):
    source, mlm = pretrained
    moved = {}
    for factor in (1.0, 0.1):
        config = _experiment("bert_classify", init_from=source, total_steps=3)
        config.optim.update(name="sgd", schedule="constant", warmup_steps=0, clip_norm=0.0,
                            weight_decay=0.0, lr_multipliers=f"^encoder/={factor}")
        result = train.run(config, str(tmp_path / str(factor)))
        after, before = _encoder(result.state.params), _encoder(mlm.state.params)
        moved[factor] = sum(float(np.abs(after[k] - before[k]).sum()) for k in before)
    assert 0 < moved[0.1] < 0.2 * moved[1.0]


def test_imdb_config_fine_tunes_on_mock_tfds_data(tmp_path):
    """The online config, on TFDS mock examples (random text, real features and splits)."""
    import tensorflow_datasets as tfds
    spec = importlib.util.spec_from_file_location("bc", ROOT / "experiments" / "bert_classify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("imdb")
    tiny = _experiment("bert_classify")
    config.update(total_steps=4, batch_size=8, log_every=2, eval_every=4, ckpt_every=4)
    config.model = tiny.model
    config.data.update(eval_batches=2, tfds_dir=str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        result = train.run(config, str(tmp_path / "run"))
    assert result.data.class_names == ["neg", "pos"] and result.config.model.num_classes == 2
    assert {"eval/accuracy", "eval/f1", "eval/loss"} <= set(result.eval_metrics)
    batch = result.data.train[0]
    cls = result.data.tokenizer.id("[CLS]")
    assert (batch["tokens"][:, 0] == cls).all() and batch["tokens"].shape == (8, 32)
