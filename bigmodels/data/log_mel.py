"""Log-mel features in numpy: resampling, framing, a mel filterbank and normalisation.

Frames are `window_ms` long (Hann window) every `hop_ms`; each frame's power spectrum
is pooled by triangular filters equally spaced on the HTK mel scale,
mel(f) = 2595 log10(1 + f / 700), and its log taken. A wave of n samples gives
1 + (n - window) // hop frames (one, zero-padded, if it is shorter than a window).
"""

import numpy as np

LOG_FLOOR = 1e-6       # log(power + floor): silence is a finite, small value


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling through the FFT: the spectrum above the lower Nyquist
    frequency is dropped (downsampling) or zero-filled (upsampling)."""
    wave = np.asarray(wave, np.float64)
    if rate_in == rate_out or len(wave) == 0:
        return wave.astype(np.float32)
    n_out = max(1, int(round(len(wave) * rate_out / rate_in)))
    spectrum = np.fft.rfft(wave)
    return (np.fft.irfft(spectrum, n_out) * (n_out / len(wave))).astype(np.float32)


def mel_filterbank(num_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """(n_fft // 2 + 1) x num_mels triangular filters; filter m peaks (at 1) at the m-th
    of num_mels + 2 points equally spaced in mel between fmin and fmax."""
    fmax = sample_rate / 2 if fmax is None else fmax
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), num_mels + 2))
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frame(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """num_frames x window, zero-padding a wave shorter than one window."""
    if len(wave) < window:
        wave = np.pad(wave, (0, window - len(wave)))
    num_frames = 1 + (len(wave) - window) // hop
    starts = np.arange(num_frames)[:, None] * hop
    return wave[starts + np.arange(window)[None, :]]


def log_mel(wave: np.ndarray, sample_rate: int = 16000, num_mels: int = 40,
            window_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
    """num_frames x num_mels float32 log-mel energies of a mono wave in [-1, 1]."""
    window = int(round(sample_rate * window_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    n_fft = 1 << (window - 1).bit_length()          # next power of two
    frames = frame(np.asarray(wave, np.float32), window, hop) * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    mel = power @ mel_filterbank(num_mels, n_fft, sample_rate)
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def normalize(features: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation of each mel bin (over frames), so
    loudness and the voice's spectral tilt do not shift the inputs."""
    features = np.asarray(features, np.float32)
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return (features - mean) / np.maximum(std, 1e-3)
