"""Additive noise at a chosen signal-to-noise ratio, for robust training data and noise curves."""

from __future__ import annotations

import numpy as np


def add_white_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``wave`` plus Gaussian white noise so that signal power / noise power = ``snr_db``.

    The power is measured on the whole clip; silence stays silent-plus-noise, which is what a
    microphone in a noisy room gives.
    """
    wave = np.asarray(wave, dtype=np.float32)
    power = float(np.mean(wave.astype(np.float64) ** 2)) if wave.size else 0.0
    if power == 0.0:
        return wave.copy()
    noise_power = power / (10.0 ** (snr_db / 10.0))
    noise = rng.normal(0.0, np.sqrt(noise_power), size=wave.shape)
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR in dB of ``noisy`` against ``clean``; used by tests to check :func:`add_white_noise`."""
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return float(10.0 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))
