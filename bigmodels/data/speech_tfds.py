"""Online speech: any TFDS audio dataset, e.g. speech_commands (needs the network once).

The dataset is prepared as array_record (read without TensorFlow, as for our own
datasets). Each example's transcript is its `text_key` string (librispeech: "text") or,
with text_key="", the name of its `label_key` class (speech_commands: "yes", "left", ...);
classes named "_..." (speech_commands' _silence_ and _unknown_) carry no words and are
skipped. The audio is resampled to data.sample_rate and turned into log-mel features
in memory; num_train / num_eval cap how many examples are read (0 = all).
"""

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import log_mel, speech, tfds_source
from bigmodels.errors import BadInput

OFFLINE = "data.kind=synthetic_speech (espeak-ng; speech_ctc's default)"


def transcriber(features, text_key: str, label_key: str):
    """example -> transcript ("" = skip), from the dataset's feature spec."""
    if text_key:
        def from_text(example):
            text = example[text_key]
            return text.decode("utf-8") if isinstance(text, bytes) else str(text)
        return from_text
    names = features[label_key].names

    def from_label(example):
        name = names[int(example[label_key])]
        return "" if name.startswith("_") else name.replace("_", " ")
    return from_label


def as_float(audio) -> np.ndarray:
    """Samples in [-1, 1]: integer PCM is scaled by its full range."""
    audio = np.asarray(audio)
    if audio.ndim > 1:
        audio = audio.mean(axis=-1)                 # channels last -> mono
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    return audio.astype(np.float32)


def load_utterances(source, transcript, audio_key: str, rate: int, d,
                    limit: int = 0) -> tuple[list, list]:
    """(log-mel features, transcripts) of the first `limit` (0: all) usable examples."""
    features, texts = [], []
    for i in range(len(source)):
        if limit and len(texts) >= limit:
            break
        example = source[i]
        text = transcript(example)
        if not text.strip():
            continue
        wave = log_mel.resample(as_float(example[audio_key]), rate, d.sample_rate)
        features.append(log_mel.log_mel(wave, d.sample_rate, d.num_mels, d.window_ms,
                                        d.hop_ms).astype(np.float16))
        texts.append(text)
    return features, texts


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    tfds.disable_progress_bar()
    builder = tfds_source.prepared_builder(d, OFFLINE)
    info = builder.info.features
    if d.audio_key not in info:
        raise BadInput(f"data.audio_key={d.audio_key!r} is not a feature of {d.name} "
                       f"(features: {', '.join(info.keys())})")
    rate = getattr(info[d.audio_key], "sample_rate", None) or d.sample_rate
    transcript = transcriber(info, d.text_key, d.label_key)
    splits = [load_utterances(builder.as_data_source(split), transcript, d.audio_key, rate, d,
                              limit)
              for split, limit in ((d.train_split, d.num_train), (d.eval_split, d.num_eval))]
    return speech.build_data(config, workdir, *splits, process_index, process_count)


def tfds_speech_data_config(**overrides):
    """The `config.data` of the tfds_speech kind (defaults: speech_commands)."""
    d = ml_collections.ConfigDict(dict(
        kind="tfds_speech",
        path="",                      # unused; kept so every config.data has the key
        name="speech_commands",
        train_split="train",
        eval_split="validation",
        audio_key="audio",
        text_key="",                  # a string feature with the transcript, or
        label_key="label",            # "" text_key: the class name is the transcript
        num_train=20000,              # examples read into memory; 0 = all
        num_eval=1024,
        sample_rate=16000,
        num_mels=40,
        window_ms=25.0,
        hop_ms=10.0,
        max_frames=128,               # speech_commands clips are 1 s (98 frames)
        max_label_len=16,
        eval_batches=8,
        prefetch=2,                   # batches built and placed on devices ahead (0 = none)
        tfds_dir="",
    ))
    d.update(overrides)
    return d
