"""Log-mel spectrograms in plain torch: Whisper's front end and a general one.

The mel filterbank is the Slaney-style one (Slaney mel scale, area-normalised triangles) that
librosa computes by default and that Whisper was trained with, so :func:`whisper_log_mel` matches
``WhisperFeatureExtractor`` without librosa or torchaudio at run time, on the CPU or a GPU.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
WHISPER_N_MELS = 80
WHISPER_SECONDS = 30
WHISPER_SAMPLES = WHISPER_SECONDS * SAMPLE_RATE  # 480000
WHISPER_FRAMES = WHISPER_SAMPLES // HOP_LENGTH  # 3000
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest bin (80 dB)

_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = 15.0
_LOG_STEP = np.log(6.4) / 27.0
_LINEAR_STEP = 200.0 / 3.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _LINEAR_STEP
    log_part = hz >= _MIN_LOG_HZ
    mel[log_part] = _MIN_LOG_MEL + np.log(hz[log_part] / _MIN_LOG_HZ) / _LOG_STEP
    return mel


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _LINEAR_STEP
    log_part = mel >= _MIN_LOG_MEL
    hz[log_part] = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel[log_part] - _MIN_LOG_MEL))
    return hz


@lru_cache(maxsize=16)
def _filterbank_array(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
) -> np.ndarray:
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(
        hz_to_mel(np.array([fmin]))[0], hz_to_mel(np.array([fmax]))[0], n_mels + 2
    )
    edges = mel_to_hz(mel_points)  # (n_mels + 2,)
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freqs)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per triangle
    weights.setflags(write=False)
    return weights


def mel_filterbank(
    n_mels: int,
    *,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Slaney-style mel filterbank (n_mels, n_fft // 2 + 1), as librosa's ``filters.mel``."""
    top = sample_rate / 2.0 if fmax is None else float(fmax)
    weights = _filterbank_array(n_mels, n_fft, sample_rate, float(fmin), top)
    return torch.tensor(weights, dtype=torch.float32)


def mel_power(
    wave: torch.Tensor,
    *,
    n_mels: int,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    sample_rate: int = SAMPLE_RATE,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Mel power spectrogram of a (N,) or (B, N) wave: (..., n_mels, 1 + N // hop_length).

    Frames are centred (the wave is padded by ``n_fft // 2`` on each side, with ``pad_mode``)
    and windowed with a periodic Hann window; the power is the squared magnitude.
    """
    wave = wave.float()
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(
        wave,
        n_fft,
        hop_length,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # (..., n_freqs, frames)
    filters = mel_filterbank(n_mels, n_fft=n_fft, sample_rate=sample_rate).to(wave.device)
    return filters @ power


def compress(power: torch.Tensor) -> torch.Tensor:
    """Whisper's dynamic-range compression of a (..., n_mels, frames) power spectrogram.

    log10 with a floor, then everything more than 80 dB below the loudest bin of each item is
    raised to that level, then the values are shifted and scaled to roughly [-1, 1].
    """
    log_spec = power.clamp(min=LOG_FLOOR).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - DYNAMIC_RANGE)
    return (log_spec + 4.0) / 4.0


def log_mel(
    wave: torch.Tensor,
    *,
    n_mels: int = 64,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    sample_rate: int = SAMPLE_RATE,
) -> torch.Tensor:
    """Compressed log-mel spectrogram (..., n_mels, 1 + N // hop_length) of a wave of any length.

    Uses zero padding at the edges, so even a wave shorter than one window has a frame.
    """
    power = mel_power(
        wave, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, sample_rate=sample_rate
    )
    return compress(power)


def pad_or_trim(wave: torch.Tensor, length: int = WHISPER_SAMPLES) -> torch.Tensor:
    """Zero-pad or cut the last axis of ``wave`` to ``length`` samples."""
    size = int(wave.shape[-1])
    if size >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - size))


def whisper_log_mel(wave: torch.Tensor, *, n_mels: int = WHISPER_N_MELS) -> torch.Tensor:
    """Whisper's input features for one 30 s window: (..., n_mels, 3000).

    The wave (16 kHz) is padded or cut to 30 s first, as Whisper does, so the loudness floor is
    set over the whole window; the STFT's extra last frame is dropped.
    """
    power = mel_power(pad_or_trim(wave), n_mels=n_mels, pad_mode="reflect")
    return compress(power[..., :WHISPER_FRAMES])
