"""Sample-rate conversion shared by the audio decoder and the speech synthesiser."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of a 1-D float waveform; returns float32."""
    wave = np.asarray(wave, dtype=np.float32)
    if orig_rate == target_rate or wave.size == 0:
        return wave
    g = gcd(int(orig_rate), int(target_rate))
    out = resample_poly(wave, target_rate // g, orig_rate // g)
    return np.asarray(out, dtype=np.float32)
