"""Speech recognition with CTC: log-mel front end, greedy decoding, CER/WER edit
distances against hand-computed values, padding invariance, the espeak dataset's
held-out split and cache, and a short training run on a mixed mesh."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import train
from bigmodels.data import espeak, log_mel, speech, speech_tfds
from bigmodels.errors import BadInput
from bigmodels.metrics.edit_distance import levenshtein, token_errors, word_errors
from bigmodels.models.speech import SpeechCTC, conv_output_lengths
from bigmodels.tasks.ctc import CTC, greedy_decode
from helpers import read_metrics

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (CI installs it)")


def _tone(hz, seconds=1.0, rate=16000):
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate).astype(np.float32)


# 40 mel bins over 0-8 kHz: mel(8000 Hz) = 2840.0, so filter centres lie at multiples of
# 2840.0 / 41 = 69.27 mel, filter m at (m + 1) * 69.27. mel(300 Hz) = 401.9 -> 5.80 -> m=5;
# mel(1000 Hz) = 1000.0 -> 14.44 -> m=13; mel(3000 Hz) = 1876.5 -> 27.09 -> m=26.
@pytest.mark.parametrize("hz, mel_bin", [(300, 5), (1000, 13), (3000, 26)])
def test_pure_tone_lands_in_its_mel_bin(hz, mel_bin):
    features = log_mel.log_mel(_tone(hz), sample_rate=16000, num_mels=40)
    assert features.shape == (98, 40)       # 1 + (16000 - 400) // 160 frames of 25 ms / 10 ms
    assert np.argmax(features.mean(axis=0)) == mel_bin


def test_resampling_keeps_a_tone_at_its_frequency():
    wave = log_mel.resample(_tone(1000, rate=22050), 22050, 16000)
    assert len(wave) == 16000
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) == 1000         # 1 Hz per bin for one second
    np.testing.assert_allclose(np.abs(wave).max(), 1.0, atol=0.02)


def test_short_wave_gives_one_frame_and_normalize_is_per_bin():
    assert log_mel.log_mel(np.zeros(100), 16000).shape == (1, 40)
    f = log_mel.normalize(np.random.default_rng(0).normal(3, 5, size=(50, 4)))
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(f.std(0), 1, atol=1e-4)


def _one_hot_logits(frames, vocab):
    return jax.nn.one_hot(jnp.array(frames), vocab) * 10.0


def test_greedy_decode_collapses_repeats_then_drops_blanks():
    blank = 4
    # "1 1 _ 1 2 2 _ _ 3" -> 1 1 2 3 (the blank separates the two 1s); then padding.
    frames = [[1, 1, 4, 1, 2, 2, 4, 4, 3, 2, 2], [4, 4, 0, 0, 0, 4, 0, 3, 3, 3, 3]]
    ids, lengths = greedy_decode(_one_hot_logits(frames, 5), jnp.array([9, 7]), blank)
    assert lengths.tolist() == [4, 2]
    assert ids[0, :4].tolist() == [1, 1, 2, 3]
    assert ids[1, :2].tolist() == [0, 0]
    assert (ids[0, 4:] == blank).all() and (ids[1, 2:] == blank).all()


def _encode(texts, width=None):
    width = width or max(len(t) for t in texts)
    ids = np.full((len(texts), width), 99, np.int32)     # padding that must not matter
    for i, t in enumerate(texts):
        ids[i, :len(t)] = [ord(c) for c in t]
    return jnp.asarray(ids), jnp.array([len(t) for t in texts], jnp.int32)


def test_character_edit_distances_match_hand_computed_values():
    pairs = {("kitten", "sitting"): 3, ("flaw", "lawn"): 2, ("", "abc"): 3, ("abc", ""): 3,
             ("seven", "seven"): 0, ("one", "none"): 1, ("three", "tree"): 1,
             ("ab", "ba"): 2}
    hyp, hyp_len = _encode([h for h, _ in pairs], 9)
    ref, ref_len = _encode([r for _, r in pairs], 7)
    errors = jax.jit(token_errors)(hyp, hyp_len, ref, ref_len)
    assert errors.tolist() == list(pairs.values())


def _python_levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_edit_distance_matches_the_textbook_recurrence_on_random_strings():
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abc"), rng.integers(0, 12))) for _ in range(64)]
    hyp, hyp_len = _encode(texts[:32], 12)
    ref, ref_len = _encode(texts[32:], 12)
    errors = token_errors(hyp, hyp_len, ref, ref_len)
    assert errors.tolist() == [_python_levenshtein(a, b) for a, b in zip(texts[:32], texts[32:])]
    mismatch = jnp.array([[0, 1], [1, 0], [1, 1]], bool)    # a = xyz, b = xy
    assert int(levenshtein(mismatch, 3, 2)) == 1 and int(levenshtein(mismatch, 0, 2)) == 2


def test_word_edit_distances_match_hand_computed_values():
    space = ord(" ")
    cases = [("one two three", "one two three", 0, 3),
             ("one too three four", "one two three", 2, 3),    # a substitution, an insertion
             ("onetwo three", "one two three", 2, 3),           # one word for two
             ("  one   two ", "one two", 0, 2),                 # extra spaces split nothing
             ("", "five six", 2, 2),
             ("nine", "", 1, 0)]
    hyp, hyp_len = _encode([c[0] for c in cases], 20)
    ref, ref_len = _encode([c[1] for c in cases], 14)
    errors, words = jax.jit(word_errors, static_argnums=4)(hyp, hyp_len, ref, ref_len, space)
    assert errors.tolist() == [c[2] for c in cases]
    assert words.tolist() == [c[3] for c in cases]


def test_conv_output_lengths_are_ceil_of_each_stride():
    lengths = jnp.array([1, 2, 3, 7, 8, 9])
    assert conv_output_lengths(lengths, (2,)).tolist() == [1, 1, 2, 4, 4, 5]
    assert conv_output_lengths(lengths, (2, 2)).tolist() == [1, 1, 1, 2, 2, 3]
    assert conv_output_lengths(lengths, (2, 1)).tolist() == [1, 1, 2, 4, 4, 5]


@pytest.mark.parametrize("encoder", ["lstm", "transformer"])
def test_padding_changes_neither_valid_logits_nor_the_loss(encoder):
    model = SpeechCTC(vocab_size=6, conv_strides=(2, 2), conv_dim=8, encoder=encoder,
                      hidden_dim=8, num_layers=2, num_heads=2, mlp_dim=16)
    rng = np.random.default_rng(0)
    lengths = np.array([13, 7, 20])
    features = rng.normal(size=(3, 20, 5)).astype(np.float32)
    labels = np.array([[1, 2, 0, 3], [4, 4, 0, 0], [1, 0, 2, 3]], np.int32)
    label_lengths = np.array([4, 2, 3], np.int32)
    params = jax.jit(model.init)(jax.random.key(0), features, lengths)["params"]
    task = CTC(model, max_frames=20)
    apply = jax.jit(model.apply)

    @jax.jit
    def run(f, lab):
        batch = {"features": f, "feature_lengths": jnp.asarray(lengths),
                 "labels": lab, "label_lengths": jnp.asarray(label_lengths)}
        logits, out_lengths = model.apply({"params": params}, f, lengths)
        return logits, out_lengths, task._losses(logits, out_lengths, batch)

    logits, out_lengths, losses = run(features, labels)
    assert out_lengths.tolist() == [4, 2, 5]
    noisy = features.copy()
    for i, n in enumerate(lengths):
        noisy[i, n:] = rng.normal(size=noisy[i, n:].shape) * 100
    longer = np.concatenate([noisy, rng.normal(size=(3, 12, 5)).astype(np.float32)], axis=1)
    other_labels = np.where(np.arange(4) < label_lengths[:, None], labels, 5)
    other_labels = np.concatenate([other_labels, np.full((3, 3), 2, np.int32)], axis=1)
    padded_logits, padded_lengths, padded_losses = run(longer, other_labels)
    np.testing.assert_allclose(padded_losses, losses, rtol=1e-5)
    for i, n in enumerate(out_lengths.tolist()):
        np.testing.assert_allclose(padded_logits[i, :n], logits[i, :n], rtol=1e-4, atol=1e-5)
        alone, _ = apply({"params": params}, features[i:i + 1, :lengths[i]], lengths[i:i + 1])
        np.testing.assert_allclose(alone[0], logits[i, :n], rtol=1e-4, atol=1e-5)


def test_speech_tokenizer_puts_space_first_and_blank_last():
    texts = [speech.normalize_text(t) for t in ("Three\tSEVEN  one", "yes")]
    assert texts[0] == "three seven one"
    tokenizer = speech.speech_tokenizer(texts)
    assert tokenizer.encode(" ").tolist() == [speech.SPACE_ID]
    assert tokenizer.id(speech.BLANK) == tokenizer.vocab_size - 1
    assert tokenizer.decode(tokenizer.encode(texts[0])) == texts[0]


class _ClassLabel:
    names = ["yes", "no", "_silence_"]


def test_tfds_speech_reads_labels_as_transcripts_and_skips_silence():
    d = speech_tfds.tfds_speech_data_config()
    source = [{"audio": (_tone(500, 1.0) * 20000).astype(np.int16), "label": i % 3}
              for i in range(7)]
    transcript = speech_tfds.transcriber({"label": _ClassLabel()}, "", "label")
    features, texts = speech_tfds.load_utterances(source, transcript, "audio", 16000, d)
    assert texts == ["yes", "no", "yes", "no", "yes"]
    assert features[0].shape == (98, 40)
    assert speech_tfds.as_float(np.array([-32768, 16384], np.int16)).tolist() == [-1.0, 0.5]


class _FakeBuilder:
    """What speech_tfds reads of a TFDS builder: info.features and data sources."""
    class info:
        features = {"audio": type("Audio", (), {"sample_rate": 8000})(),
                    "label": _ClassLabel()}

    def download_and_prepare(self):
        pass

    def as_data_source(self, split):
        return [{"audio": (_tone(300 * (i + 1), 0.5, 8000) * 3e4).astype(np.int16),
                 "label": i % 3} for i in range(12 if split == "train" else 6)]


def test_tfds_speech_build_makes_fixed_shape_batches(tmp_path, monkeypatch):
    from bigmodels.config import base_config
    config = base_config()
    config.batch_size = 4
    config.data = speech_tfds.tfds_speech_data_config(max_frames=64, eval_batches=3)
    monkeypatch.setattr(speech_tfds.tfds, "builder", lambda *a, **k: _FakeBuilder())
    data = speech_tfds.build(config, str(tmp_path))
    batch = data.train[5]
    assert batch["features"].shape == (4, 64, 40) and batch["labels"].shape == (4, 16)
    assert set(batch["feature_lengths"].tolist()) == {48}      # 1 + (8000 - 400) // 160
    assert len(data.eval) == 1                                 # 4 usable eval examples
    names = [data.tokenizer.decode(row[:n]) for row, n in zip(batch["labels"],
                                                              batch["label_lengths"])]
    assert set(names) <= {"yes", "no"}
    # A pure function of the index: an independent build gives the same batch 5.
    again = speech_tfds.build(config, str(tmp_path / "again"))
    np.testing.assert_array_equal(again.train[5]["features"], batch["features"])
    np.testing.assert_array_equal(again.train[5]["labels"], batch["labels"])

    def missing(*args, **kwargs):
        raise FileNotFoundError("no such dataset")
    monkeypatch.setattr(speech_tfds.tfds, "builder", missing)
    with pytest.raises(BadInput, match="data.name="):
        speech_tfds.build(config, str(tmp_path))


def _espeak_config(tmp_path, **overrides):
    return espeak.espeak_data_config(**{**dict(
        voices="en-us,en-gb+f2", eval_voices="en-us+m3", num_train=12, num_eval=6,
        max_words=3, tfds_dir=str(tmp_path / "tfds")), **overrides})


@needs_espeak
def test_espeak_eval_split_is_held_out_and_cached(tmp_path, monkeypatch):
    d = _espeak_config(tmp_path)
    params = espeak.synthesis_params(d)
    train_specs = espeak.utterance_specs(dict(params, num_train=300), "train")
    eval_specs = espeak.utterance_specs(dict(params, num_eval=100), "validation")
    assert not {s["text"] for s in train_specs} & {s["text"] for s in eval_specs}
    assert {s["voice"] for s in eval_specs} == {"en-us+m3"}
    assert {s["voice"] for s in train_specs} == {"en-us", "en-gb+f2"}
    assert all(1 <= len(s["text"].split()) <= 3 for s in train_specs)

    features, texts = espeak.load_split(espeak.prepare(d), "train")
    assert texts == [s["text"] for s in train_specs[:12]]
    assert all(f.shape[1] == 40 and 20 < len(f) < 300 for f in features)

    with pytest.raises(BadInput, match="espeak-ng failed for voice 'bogus'"):
        espeak.prepare(_espeak_config(tmp_path, voices="bogus"))

    def no_synthesis(spec):
        raise AssertionError("the cached dataset should be read, not synthesised")
    monkeypatch.setattr(espeak, "synthesize", no_synthesis)
    _, cached = espeak.load_split(espeak.prepare(d), "train")
    assert cached == texts
    monkeypatch.setattr(espeak, "ESPEAK", "no-such-espeak-ng")
    with pytest.raises(BadInput, match="espeak-ng is not installed"):
        espeak.prepare(_espeak_config(tmp_path, synth_seed=1))


@needs_espeak
def test_ctc_trains_on_a_mixed_mesh(tmp_path):
    from bigmodels.config import base_config
    from bigmodels.models.speech import speech_config
    c = base_config()
    c.task = "ctc"
    c.update(total_steps=20, batch_size=16, log_every=1, eval_every=20, ckpt_every=20)
    c.model = speech_config(conv_strides=(2, 1), conv_dim=32, hidden_dim=32, num_layers=1)
    c.optim.update(name="adam", lr=1e-2, clip_norm=1.0)
    c.data = _espeak_config(tmp_path, num_train=32, num_eval=16, eval_batches=1, max_words=2,
                            max_frames=160, max_label_len=16)
    # FSDP x data, no tensor axis: a tensor-sharded LSTM gathers its hidden state at every
    # time step, 3x slower a step here (tests/test_rnn.py trains one on the full mesh).
    c.mesh.update(data=4, fsdp=2, tensor=1)
    result = train.run(c, str(tmp_path / "run"))
    losses = read_metrics(str(tmp_path / "run"))
    assert np.mean([losses[s] for s in range(16, 21)]) < 0.7 * losses[1], losses
    for name in ("eval/loss", "eval/cer", "eval/wer"):
        assert np.isfinite(result.eval_metrics[name])
    assert 0.0 <= result.eval_metrics["eval/cer"] <= 2.0
    kernels = [x for x in jax.tree.leaves(result.state.params) if x.ndim >= 2]
    assert any(not x.sharding.is_fully_replicated for x in kernels)
