"""Prediction for every family (bigmodels.predict) on :tiny runs, each output checked
against the model's own forward pass on inputs prepared by the data code (or by hand),
and bad input refused with exit code 2, one line and nothing written."""

import csv
import os
import shutil
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from bigmodels import checkpoint, decoding, generate, models, predict, train
from bigmodels.data import espeak, log_mel, sklearn_data, tokenizers
from bigmodels.errors import BadInput
from bigmodels.export import export
from bigmodels.predict import __main__ as cli
from bigmodels.predict import families, tabular
from bigmodels.tasks.ctc import greedy_decode
from bigmodels.tasks.seq2seq import special_ids
from conftest import ROOT
from helpers import experiment_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trains each :tiny experiment once, on first use; {name: workdir}."""
    root = tmp_path_factory.mktemp("runs")
    done = {}

    def run(name: str) -> str:
        if name not in done:
            config = experiment_config(name)
            if name == "digits_gan":
                config.fid_classifier = ""
            train.run(config, str(root / name))
            done[name] = str(root / name)
        return done[name]
    return run


def _variables(workdir):
    """The checkpoint's variables as the model's apply takes them."""
    names = checkpoint.metadata(workdir)
    state = (checkpoint.load(workdir, prefix="model_state")
             if any(n.startswith("model_state/") for n in names) else {})
    return {"params": checkpoint.load(workdir), **state}


def _model(workdir):
    config = checkpoint.read_config(workdir)
    return config, models.build(config.model)


def _softmax(logits):
    return np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), -1))


def _probabilities(records, names):
    return np.array([[r["probabilities"][n] for n in names] for r in records])


# --- image classifiers ---------------------------------------------------------------

def test_image_classifier_matches_the_forward_pass_on_the_eval_batches(runs, tmp_path):
    """A ResNet (BatchNorm statistics from the checkpoint): the raw test digits give the
    probabilities of its forward pass on the data code's own eval batch, across padded,
    sharded batches; a PNG is decoded and resized as the image-folder data does."""
    workdir = runs("digits_resnet")
    config, model = _model(workdir)
    variables = _variables(workdir)
    assert "batch_stats" in variables
    eval_batch = sklearn_data.build(config, workdir).eval[0]      # reads preprocess.json
    raw = sklearn_data.load_splits("digits", 0.2)["test"][1][:13]
    logits = model.apply(variables, eval_batch["image"][:13], train=False)

    predictor = predict.load(workdir, batch_size=5)               # 2 batches of 8, padded
    records = predictor.predict([row.reshape(8, 8) for row in raw])
    names = [str(d) for d in range(10)]
    np.testing.assert_allclose(_probabilities(records, names), _softmax(logits), atol=1e-5)
    assert [r["label"] for r in records] == [str(int(i)) for i in np.argmax(logits, -1)]
    assert [r["input"] for r in records] == list(range(13))

    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    small = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.BILINEAR), np.float64)
    standardizer = sklearn_data.preprocess.load(os.path.join(workdir, "preprocess.json"))
    x = standardizer["features"].apply(small[None, :, :, None] * 16 / 255)
    (record,) = predictor.predict(str(tmp_path / "digit.png"))
    np.testing.assert_allclose(_probabilities([record], names),
                               _softmax(model.apply(variables, x, train=False)), atol=1e-5)
    assert record["input"] == str(tmp_path / "digit.png")


def test_an_export_keeps_the_batchnorm_statistics_and_predicts_like_the_run(runs, tmp_path):
    workdir = runs("digits_resnet")
    out = export(workdir, str(tmp_path / "export"))
    images = [np.random.default_rng(1).uniform(0, 16, (8, 8)) for _ in range(3)]
    from_run, from_export = (predict.load(w).predict(images) for w in (workdir, out))
    names = [str(d) for d in range(10)]
    np.testing.assert_array_equal(_probabilities(from_export, names),
                                  _probabilities(from_run, names))


def test_a_checkpoint_without_its_batchnorm_statistics_is_refused(runs, tmp_path):
    """An export written as params alone (as before model_state was exported)."""
    from bigmodels.checkpoint import exports
    workdir = runs("digits_resnet")
    out = tmp_path / "params_only"

    def params_only(tmp):
        exports.save_params(tmp, checkpoint.load(workdir))
        for name in ("config.json", "preprocess.json"):
            shutil.copy(os.path.join(workdir, name), tmp)
    exports.write_atomically(str(out), params_only)
    with pytest.raises(BadInput, match="batch_stats"):
        predict.load(str(out))


def test_unreadable_images_and_wrong_inputs_are_refused(runs, tmp_path):
    predictor = predict.load(runs("digits_resnet"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(BadInput, match="notes.png is not a readable image"):
        predictor.predict([str(tmp_path / "notes.png")])
    with pytest.raises(BadInput, match="raw pixels of shape"):
        predictor.predict([np.zeros((3, 3))])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="holds no image files"):
        predictor.read(str(tmp_path / "empty"))


# --- text classifiers ----------------------------------------------------------------

def test_text_classifier_matches_the_forward_pass_on_hand_made_tokens(runs, tmp_path):
    """BERT: each text as [CLS] text [SEP] padded with [PAD], cut to the passage length;
    labels named by the run's classes.json."""
    workdir = runs("bert_classify")
    config, model = _model(workdir)
    tokenizer = tokenizers.load(os.path.join(workdir, "tokenizer.json"))
    texts = ["def main(argv):", "import tarfile\n" * 10, "x"]
    seq_len = config.model.context_length
    tokens = np.full((3, seq_len), tokenizer.id("[PAD]"), np.int32)
    lengths = np.zeros(3, np.int32)
    for i, text in enumerate(texts):
        ids = [tokenizer.id("[CLS]"), *tokenizer.encode(text)[:seq_len - 2],
               tokenizer.id("[SEP]")]
        tokens[i, :len(ids)], lengths[i] = ids, len(ids)
    assert lengths[1] == seq_len                               # the long one is cut
    logits = model.apply(_variables(workdir), tokens, lengths, train=False)

    predictor = predict.load(workdir)
    records = predictor.predict(texts)
    names = ["argparse", "inspect", "pydoc", "smtplib", "tarfile", "turtle"]
    assert sorted(records[0]["probabilities"]) == names
    np.testing.assert_allclose(_probabilities(records, names), _softmax(logits), atol=1e-5)
    assert [r["input"] for r in records] == texts
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "image.png")
    with pytest.raises(BadInput, match="image.png is not a UTF-8 text file"):
        predictor.read(str(tmp_path / "image.png"))


# --- tabular ---------------------------------------------------------------------------

def _write_csv(path, columns, rows, extra=()):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *columns[::-1], *extra])     # any order, extra columns
        for i, row in enumerate(rows):
            writer.writerow([i, *["" if np.isnan(v) else repr(float(v)) for v in row[::-1]],
                             *["x"] * len(extra)])


def test_tabular_binary_classifier_reads_a_csv_through_the_saved_preprocessing(runs,
                                                                             tmp_path):
    workdir = runs("tabular_mlp")
    config, model = _model(workdir)
    eval_batch = sklearn_data.build(config, workdir).eval[0]     # log1p + standardised
    raw = sklearn_data.load_splits("breast_cancer", 0.2)["test"][1][:6].astype(np.float64)
    columns = tabular.feature_names("breast_cancer")
    rows = raw.copy()
    rows[2, 5] = np.nan                                          # a missing value
    _write_csv(tmp_path / "rows.csv", columns, rows, extra=("note",))
    p = np.asarray(jax.nn.sigmoid(model.apply(_variables(workdir), eval_batch["features"][:6],
                                              train=False)[:, 0]))

    predictor = predict.load(workdir)
    records = predictor.predict(predictor.read(str(tmp_path / "rows.csv")))
    assert len(records) == 6 and "skipped" in records[2] and "label" not in records[2]
    assert repr(columns[5]) in records[2]["skipped"]
    kept = [0, 1, 3, 4, 5]
    np.testing.assert_allclose([records[i]["probabilities"]["benign"] for i in kept], p[kept],
                               rtol=1e-4)
    np.testing.assert_allclose([records[i]["probabilities"]["malignant"] for i in kept],
                               1 - p[kept], rtol=1e-4)
    assert records[0]["input"][columns[0]] == pytest.approx(raw[0, 0])
    np.testing.assert_allclose([r["probabilities"]["benign"] for r in predictor.predict(raw)],
                               p, rtol=1e-4)                    # a 2-D array, in order

    (tmp_path / "short.csv").write_text("mean radius,mean texture\n1,2\n")
    with pytest.raises(BadInput, match="lacks the training column"):
        predictor.read(str(tmp_path / "short.csv"))


def test_regression_predicts_in_the_targets_own_units(runs):
    workdir = runs("tabular_regression")
    config, model = _model(workdir)
    data = sklearn_data.build(config, workdir)
    eval_batch = data.eval[0]
    raw = sklearn_data.load_splits("diabetes", 0.2)["test"][1][:4]
    z = np.asarray(model.apply(_variables(workdir), eval_batch["features"][:4],
                               train=False)[:, 0], np.float64)
    target = data.stats["target"]
    columns = tabular.feature_names("diabetes")
    records = predict.load(workdir).predict([dict(zip(columns, row)) for row in raw])
    np.testing.assert_allclose([r["prediction"] for r in records],
                               z * target.std[0] + target.mean[0], rtol=1e-4)


# --- generative ------------------------------------------------------------------------

def test_vae_reconstructs_from_the_mean_and_writes_pngs(runs, tmp_path):
    workdir = runs("digits_vae")
    config, model = _model(workdir)
    variables = _variables(workdir)
    x = sklearn_data.build(config, workdir).eval[0]["image"][:3]
    raw = sklearn_data.load_splits("digits", 0.2)["test"][1][:3]
    mean, _ = model.apply(variables, x, method=model.encode)
    expected = np.asarray(jax.nn.sigmoid(model.apply(variables, mean, method=model.decode)))

    predictor = predict.load(workdir)
    records = predictor.predict([r.reshape(8, 8) for r in raw], image_dir=str(tmp_path))
    for record, image, original in zip(records, expected, x):
        assert record["mse"] == pytest.approx(float(np.mean((image - original) ** 2)),
                                              rel=1e-4)
        png = np.asarray(Image.open(record["path"]), np.float64)
        np.testing.assert_allclose(png, np.round(image[..., 0] * 255), atol=1)
    in_memory = predictor.predict([raw[0].reshape(8, 8)])
    np.testing.assert_allclose(in_memory[0]["image"], expected[0], atol=1e-5)


def test_gan_draws_its_samples_from_the_seeded_noise(runs, tmp_path):
    workdir = runs("digits_gan")
    config, model = _model(workdir)
    variables = _variables(workdir)
    z = jax.random.normal(jax.random.key(3), (5, config.model.latent_dim))
    expected = np.asarray(jax.nn.sigmoid(model.apply(variables, z, train=False,
                                                     method=model.generate)))
    args = types.SimpleNamespace(workdir=workdir, step=None, batch_size=4, input=None,
                                 num_samples=5, seed=3, image_dir=None,
                                 output=str(tmp_path / "gan.jsonl"))
    records = cli.predict(args)                  # the CLI's own path, in process
    assert [r["sample"] for r in records] == list(range(5))
    for record, image in zip(records, expected):
        assert os.path.dirname(record["path"]) == str(tmp_path / "gan_images")
        np.testing.assert_allclose(np.asarray(Image.open(record["path"]), np.float64),
                                   np.round(image[..., 0] * 255), atol=1)
    with pytest.raises(BadInput, match="takes no input"):
        cli.predict(types.SimpleNamespace(**{**vars(args), "input": "x.txt"}))


# --- sequences -------------------------------------------------------------------------

def test_language_model_greedy_continuations_equal_uncached_generation(runs):
    workdir = runs("quickstart")
    config, model = _model(workdir)
    params = checkpoint.load(workdir)
    tokenizer = tokenizers.load(os.path.join(workdir, "tokenizer.json"))
    prompts = ["def f(x):", "import os\nimport sys", "class A"]
    records = predict.load(workdir, batch_size=2).predict(prompts, max_new_tokens=5,
                                                          temperature=0.0)
    for prompt, record in zip(prompts, records):
        ids = tokenizer.encode(prompt)[None]
        tokens = generate.generate_uncached(model, params, ids, 5, temperature=0.0)
        assert record == {"input": prompt,
                          "output": tokenizer.decode(tokens[0, ids.shape[1]:])}
    first = records[0]["output"]
    stop = next(c for c in first[1:] if c)                    # cut before its first use
    (stopped,) = predict.load(workdir).predict(prompts[:1], max_new_tokens=5,
                                               temperature=0.0, stop=[stop])
    assert stopped["output"] == first[:first.index(stop)]
    # Without max_new_tokens: as many as the context leaves beside the longest prompt.
    (record,) = predict.load(workdir).predict(["ab"], temperature=0.0)
    assert len(tokenizer.encode(record["output"])) <= config.model.context_length - 2


def test_seq2seq_greedy_and_beam_outputs_match_the_reference_decoders(runs):
    workdir = runs("t5_seq2seq")
    config, model = _model(workdir)
    params = checkpoint.load(workdir)
    tokenizer = tokenizers.load(os.path.join(workdir, "tokenizer.json"))
    pad, bos, eos = special_ids(model.vocab_size)
    sources = ["three hundred and seven", "twelve", "nine"]
    d = config.data
    inputs = np.full((3, d.source_len), pad, np.int32)
    lengths = np.zeros(3, np.int32)
    for i, s in enumerate(sources):
        ids = [*tokenizer.encode(s), eos]
        inputs[i, :len(ids)], lengths[i] = ids, len(ids)

    def text(ids):
        ids = list(np.asarray(ids))
        return tokenizer.decode(ids[:ids.index(eos)] if eos in ids else ids)

    predictor = predict.load(workdir)
    greedy = decoding.greedy_uncached(model, params, inputs, lengths, d.target_len, bos, eos,
                                      pad)
    assert [r["output"] for r in predictor.predict(sources)] == [text(g) for g in greedy]
    beams, _ = decoding.beam_search(model, params, inputs, lengths, d.target_len, 3, bos,
                                    eos, pad)
    assert [r["output"] for r in predictor.predict(sources, beam_size=3)] == \
        [text(b[0]) for b in beams]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_transcripts_use_the_training_features_and_greedy_ctc(runs, tmp_path):
    workdir = runs("speech_ctc")
    config, model = _model(workdir)
    d = config.data
    tokenizer = tokenizers.load(os.path.join(workdir, "tokenizer.json"))
    paths = []
    for i, text in enumerate(["three seven", "one"]):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        paths.append(str(path))
    records = predict.load(workdir).predict(str(tmp_path))        # the directory
    params = checkpoint.load(workdir)
    for path, record in zip(paths, records):
        samples, rate = espeak.read_wav(open(path, "rb").read())   # the synthesis' reader
        samples = log_mel.resample(espeak.trim_silence(samples, rate), rate, d.sample_rate)
        f = log_mel.normalize(log_mel.log_mel(samples, d.sample_rate, d.num_mels,
                                              d.window_ms, d.hop_ms))
        logits, out_lengths = model.apply({"params": params}, f[None],
                                          np.array([len(f)], np.int32))
        ids, n = greedy_decode(logits, out_lengths, model.vocab_size - 1)
        assert record == {"input": path,
                          "transcript": tokenizer.decode(np.asarray(ids[0])[:int(n[0])])}


# --- the command line ------------------------------------------------------------------

def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bigmodels.predict", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_refuses_input_of_another_family_and_missing_files(runs, tmp_path):
    workdir = runs("digits_resnet")
    (tmp_path / "prompts.txt").write_text("def f():\n")
    out = tmp_path / "out.jsonl"
    for args, message in (
            ([f"--input={tmp_path / 'prompts.txt'}"], "prompts.txt is not a readable image"),
            ([f"--input={tmp_path / 'missing.png'}"], "missing.png not found")):
        done = _cli(f"--workdir={workdir}", *args, f"--output={out}")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.stderr
        assert not out.exists() and sorted(os.listdir(tmp_path)) == ["prompts.txt"]


def test_a_workdir_that_is_not_a_run_and_a_task_without_predictor_are_refused(tmp_path):
    with pytest.raises(BadInput, match="not a directory"):
        predict.load(str(tmp_path / "nothing"))
    with pytest.raises(BadInput, match="no checkpoint"):
        predict.load(str(tmp_path))
    with pytest.raises(BadInput, match="no predictor for task=masked_lm"):
        families.family(experiment_config("bert_mlm"))
