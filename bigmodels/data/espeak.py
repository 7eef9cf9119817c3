"""Kind synthetic_speech: utterances of 1 to `max_words` words synthesised offline by
espeak-ng.

Each utterance draws its words (default: the ten digits), a voice, a speed (words per
minute) and a pitch from a generator seeded by (synth_seed, split, index). What is
held out: the eval split uses only texts that never occur in training (a text is
eval-only when the hash of its string falls below `val_fraction`), spoken by
`eval_voices`, which training never uses. So every eval (text, voice) pair, and every
eval voice, is unseen in training.

The waves (espeak-ng writes 22.05 kHz) are trimmed of leading and trailing silence,
resampled to `sample_rate` and turned into log-mel features, which are stored as a
TFDS dataset (array_record, read without TensorFlow) under data.tfds_dir. The builder
config is named by a hash of every synthesis parameter, so a second run reads the
cache and a changed parameter synthesises a new dataset.
"""

import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import subprocess
import wave

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import log_mel, speech, text_files
from bigmodels.data.local_builder import LocalBuilder
from bigmodels.errors import BadInput

ESPEAK = "espeak-ng"
DIGITS = "zero one two three four five six seven eight nine"
SILENCE = 0.02          # trimmed: leading/trailing samples quieter than this (full scale 1)
MARGIN_S = 0.05         # of silence kept on each side


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _range(value: str, name: str) -> tuple[int, int]:
    parts = [int(v) for v in _csv(value)]
    if len(parts) != 2 or parts[0] > parts[1]:
        raise BadInput(f"data.{name}: expected 'low,high', got {value!r}")
    return parts[0], parts[1]


def synthesis_params(d) -> dict:
    """Everything that changes the synthesised dataset (and so its cache key).
    `eval_text_fraction` is data.val_fraction under its old name, so that the cache keys
    of datasets synthesised before the rename still match."""
    params = dict(words=d.words.split(), max_words=d.max_words, voices=_csv(d.voices),
                  eval_voices=_csv(d.eval_voices), speeds=_range(d.speeds, "speeds"),
                  pitches=_range(d.pitches, "pitches"), num_train=d.num_train,
                  num_eval=d.num_eval, eval_text_fraction=d.val_fraction,
                  synth_seed=d.synth_seed, sample_rate=d.sample_rate, num_mels=d.num_mels,
                  window_ms=d.window_ms, hop_ms=d.hop_ms)
    if not params["words"] or params["max_words"] < 1:
        raise BadInput("data.words and data.max_words: need at least one word")
    if not params["voices"] or not params["eval_voices"]:
        raise BadInput("data.voices and data.eval_voices must each name at least one voice")
    if not 0.0 < d.val_fraction < 1.0:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    return params


def is_eval_text(text: str, fraction: float) -> bool:
    """A fixed property of the text, so no text is ever in both splits."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def utterance_specs(params: dict, split: str) -> list[dict]:
    """The text, voice, speed and pitch of every utterance of `split`."""
    count = params["num_train"] if split == "train" else params["num_eval"]
    voices = params["voices"] if split == "train" else params["eval_voices"]
    want_eval = split != "train"
    specs = []
    for index in range(count):
        rng = np.random.default_rng((params["synth_seed"], int(want_eval), index))
        for _ in range(10_000):
            words = rng.choice(params["words"], size=rng.integers(1, params["max_words"] + 1))
            text = " ".join(words)
            if is_eval_text(text, params["eval_text_fraction"]) == want_eval:
                break
        else:
            raise BadInput(f"data: no {split} text found; change data.val_fraction")
        specs.append(dict(text=text, voice=str(rng.choice(voices)),
                          speed=int(rng.integers(params["speeds"][0], params["speeds"][1] + 1)),
                          pitch=int(rng.integers(params["pitches"][0],
                                                 params["pitches"][1] + 1))))
    return specs


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit mono WAV bytes -> (float32 samples in [-1, 1], sample rate). espeak-ng's
    --stdout header has placeholder sizes, so the frames are read to the end."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise BadInput("espeak-ng: expected 16-bit mono WAV output")
        frames = w.readframes(w.getnframes())
        rate = w.getframerate()
    samples = np.frombuffer(frames[:len(frames) // 2 * 2], np.int16)
    return (samples / 32768.0).astype(np.float32), rate


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cuts espeak-ng's leading and trailing silence (fewer frames to pad and train on)."""
    loud = np.flatnonzero(np.abs(samples) > SILENCE)
    if len(loud) == 0:
        return samples
    margin = int(MARGIN_S * rate)
    return samples[max(0, loud[0] - margin):loud[-1] + margin + 1]


def synthesize(spec: dict) -> tuple[np.ndarray, int]:
    try:
        out = subprocess.run([ESPEAK, "--stdout", "-v", spec["voice"], "-s", str(spec["speed"]),
                              "-p", str(spec["pitch"]), spec["text"]],
                             capture_output=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as e:
        raise BadInput(f"espeak-ng failed for voice {spec['voice']!r}: "
                       f"{e.stderr.decode(errors='replace').strip()}") from None
    if not out:
        raise BadInput(f"espeak-ng wrote no audio for {spec!r}")
    return read_wav(out)


def features_of(spec: dict, params: dict) -> np.ndarray:
    samples, rate = synthesize(spec)
    samples = log_mel.resample(trim_silence(samples, rate), rate, params["sample_rate"])
    return log_mel.log_mel(samples, params["sample_rate"], params["num_mels"],
                           params["window_ms"], params["hop_ms"])


def require_espeak() -> None:
    if shutil.which(ESPEAK) is None:
        raise BadInput("data.kind=synthetic_speech: espeak-ng is not installed "
                       "(apt-get install espeak-ng)")


class EspeakSpeech(LocalBuilder):
    """Synthesised utterances as (index, text, voice, log-mel features)."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, params: dict, **kwargs):
        self._params = params
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        super().__init__(source="utterances synthesised with espeak-ng",
                         config=tfds.core.BuilderConfig(name="s" + key),
                         file_format="array_record", **kwargs)

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "index": np.int64,      # TFDS shuffles examples; `index` restores the order
            "text": tfds.features.Text(),
            "voice": tfds.features.Text(),
            "features": tfds.features.Tensor(shape=(None, self._params["num_mels"]),
                                             dtype=np.float16),
        }))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in ("train", "validation")}

    def _generate_examples(self, split):
        specs = utterance_specs(self._params, split)
        # espeak-ng runs as a subprocess and numpy's FFT releases the GIL: threads suffice
        # (and, unlike forked processes, are safe next to JAX's own threads).
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            features = pool.map(lambda s: features_of(s, self._params), specs)
            for index, (spec, f) in enumerate(zip(specs, features)):
                yield index, {"index": index, "text": spec["text"], "voice": spec["voice"],
                              "features": f.astype(np.float16)}


def load_split(builder, split: str) -> tuple[list, list]:
    source = builder.as_data_source(split)
    records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["index"]))
    return ([np.asarray(r["features"]) for r in records],
            [r["text"].decode("utf-8") if isinstance(r["text"], bytes) else r["text"]
             for r in records])


def prepare(d) -> EspeakSpeech:
    """The synthesised dataset of config.data `d`, built once and cached."""
    tfds.disable_progress_bar()
    builder = EspeakSpeech(params=synthesis_params(d),
                           data_dir=d.tfds_dir or text_files.default_data_dir())
    if not builder.is_prepared():
        require_espeak()
        builder.download_and_prepare()
    return builder


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    builder = prepare(config.data)
    return speech.build_data(config, workdir, load_split(builder, "train"),
                             load_split(builder, "validation"), process_index, process_count)


def espeak_data_config(**overrides):
    """The `config.data` of the synthetic_speech kind; experiment files override what they
    change."""
    d = ml_collections.ConfigDict(dict(
        kind="synthetic_speech",
        path="",                      # unused; kept so every config.data has the key
        words=DIGITS,                 # the vocabulary of spoken words (space-separated)
        max_words=4,                  # utterances have 1 to max_words words
        voices="en-us,en-gb",         # training voices (espeak-ng -v names, e.g. en-us+f3)
        eval_voices="en-gb-scotland", # held-out voices: only the eval split uses them
        speeds="140,210",             # words per minute, low,high
        pitches="30,70",              # 0-99, low,high
        num_train=2000,
        num_eval=256,
        val_fraction=0.2,             # share of texts held out for eval (by hash)
        synth_seed=0,
        sample_rate=16000,
        num_mels=40,
        window_ms=25.0,
        hop_ms=10.0,
        max_frames=256,               # batch shape; longer utterances are dropped
        max_label_len=48,
        eval_batches=8,
        prefetch=2,                   # batches built and placed on devices ahead (0 = none)
        tfds_dir="",                  # "" = $BIGMODELS_DATA_DIR or ~/.cache/bigmodels/tfds
    ))
    d.update(overrides)
    return d
