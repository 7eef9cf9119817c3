"""Speech recognition (speech_ctc): a WAV file, or a directory of them -> the
transcript, by the CTC task's greedy decoding.

Audio goes through the features training used: espeak-ng data is trimmed of leading
and trailing silence first (as its synthesis was), then every kind is resampled to
`data.sample_rate`, turned into log-mel features and normalised per utterance. A
batch is padded to a multiple of `data.max_frames` frames, so longer recordings work.
"""

import math
import os
import wave

import numpy as np

from bigmodels.data import espeak, log_mel, tokenizers
from bigmodels.errors import BadInput, first_line
from bigmodels.names import TOKENIZER_FILE
from bigmodels.predict import inputs
from bigmodels.predict.loading import check_model_state
from bigmodels.tasks.ctc import greedy_decode

EXTENSIONS = (".wav",)
_PCM = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0),
        4: (np.int32, 0.0, 2.0**31)}          # sample width -> (dtype, offset, full scale)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a PCM WAV file; channels are
    averaged."""
    try:
        with wave.open(path) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise BadInput(f"--input: {path} is not a readable WAV file ({first_line(e)})") \
            from None
    if width not in _PCM:
        raise BadInput(f"--input: {path}: {8 * width}-bit samples; expected 8, 16 or 32-bit PCM")
    dtype, offset, scale = _PCM[width]
    samples = (np.frombuffer(frames[:len(frames) // width * width], dtype) - offset) / scale
    return samples.reshape(-1, channels).mean(axis=1).astype(np.float32), rate


class Transcriber:
    input_kind = "wav"
    options = ()

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        self.data = config.data
        self.tokenizer = tokenizers.load(os.path.join(loaded.run_dir, TOKENIZER_FILE))
        blank_id = model.vocab_size - 1      # the task's convention (tasks/ctc.py)
        check_model_state(loaded, lambda rng: model.init(
            rng, np.zeros((1, self.data.max_frames, self.data.num_mels), np.float32),
            np.ones((1,), np.int32)))

        def transcribe(c, batch):
            logits, lengths = model.apply({"params": c["params"]}, batch["features"],
                                          batch["feature_lengths"], train=False)
            ids, id_lengths = greedy_decode(logits, lengths, blank_id)
            return {"ids": ids, "lengths": id_lengths}

        self.batcher = batcher
        self.consts = batcher.place({"params": loaded.params})
        self.forward = batcher.jit(transcribe)

    def read(self, path: str) -> list[str]:
        return inputs.files(path, EXTENSIONS, "WAV")

    def features(self, item, index: int) -> np.ndarray:
        """Frames x mels of a WAV path or a (samples, sample rate) pair."""
        d = self.data
        if isinstance(item, (str, os.PathLike)):
            if not os.path.isfile(item):
                raise BadInput(f"--input: {item} not found")
            samples, rate = read_wav(str(item))
        elif isinstance(item, tuple) and len(item) == 2:
            samples, rate = np.asarray(item[0], np.float32).reshape(-1), int(item[1])
        else:
            raise BadInput(f"input {index}: a speech model takes WAV paths or "
                           f"(samples, sample rate) pairs, got {type(item).__name__}")
        if d.kind == "synthetic_speech":
            samples = espeak.trim_silence(samples, rate)
        samples = log_mel.resample(samples, rate, d.sample_rate)
        return log_mel.normalize(log_mel.log_mel(samples, d.sample_rate, d.num_mels,
                                                 d.window_ms, d.hop_ms))

    def predict(self, audio) -> list[dict]:
        """`audio`: WAV paths or (samples, rate) pairs, or one path (a file or a
        directory of WAV files)."""
        audio = self.read(str(audio)) if isinstance(audio, (str, os.PathLike)) \
            else list(audio)
        if not audio:
            return []
        features = [self.features(item, i) for i, item in enumerate(audio)]
        step = self.data.max_frames
        frames = step * math.ceil(max(len(f) for f in features) / step)
        batch = {"features": np.zeros((len(features), frames, self.data.num_mels),
                                      np.float32),
                 "feature_lengths": np.array([len(f) for f in features], np.int32)}
        for i, f in enumerate(features):
            batch["features"][i, :len(f)] = f
        out = self.batcher.map(self.forward, self.consts, batch)
        return [{"input": str(item) if isinstance(item, (str, os.PathLike)) else i,
                 "transcript": self.tokenizer.decode(ids[:n])}
                for i, (item, ids, n) in enumerate(zip(audio, out["ids"], out["lengths"]))]
