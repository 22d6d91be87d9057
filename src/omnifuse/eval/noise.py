"""Perturbations of raw inputs for noise curves: one function per kind of damage.

Each takes the clean input, a level (higher is worse; the first default level leaves the input
unchanged) and a NumPy generator, so a curve is reproducible from a seed. Images are uint8 arrays
(H, W) or (H, W, C); audio is a float32 mono wave; text is a string.

- ``gaussian``: add N(0, σ²) to every pixel, σ in 0..255 units, then clip;
- ``occlusion``: zero a square whose side is ``level`` × the shorter image side, at a random place;
- ``white-noise``: add white noise at ``level`` dB SNR (``inf`` = clean), measured on the clip;
- ``typos``: each letter, with probability ``level``, is swapped with the next letter or replaced
  by a random one;
- ``drop-words``: each word is dropped with probability ``level`` (at least one word stays);
- ``jitter``: add N(0, (``level`` × the channel's standard deviation)²) to every step of a series;
- ``stale``: each step of a series, with probability ``level``, repeats the step before (a sensor
  that stopped updating);
- ``missing-fields``: each field of a table record is missing with probability ``level``.
"""

from __future__ import annotations

import math
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from omnifuse.errors import ConfigError
from omnifuse.speech.noise import add_white_noise

LETTERS = string.ascii_lowercase


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` + N(0, sigma²) per pixel (0..255 scale), rounded and clipped to uint8."""
    if sigma < 0:
        raise ConfigError(f"sigma must be ≥ 0, got {sigma}")
    pixels = np.asarray(image, dtype=np.uint8)
    if sigma == 0:
        return pixels.copy()
    noisy = pixels.astype(np.float64) + rng.normal(0.0, sigma, size=pixels.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def occlusion_side(height: int, width: int, fraction: float) -> int:
    """Side in pixels of the square that :func:`occlude` zeroes at ``fraction``."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"occlusion fraction must be in [0, 1], got {fraction}")
    return round(fraction * min(height, width))


def occlude(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Zero a random square of side ``fraction`` × the shorter side (all channels)."""
    pixels = np.asarray(image, dtype=np.uint8).copy()
    height, width = pixels.shape[:2]
    side = occlusion_side(height, width, fraction)
    if side == 0:
        return pixels
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    pixels[top : top + side, left : left + side] = 0
    return pixels


def white_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` (signal power over the whole clip); ``inf`` returns the clip."""
    if math.isinf(snr_db) and snr_db > 0:
        return np.asarray(wave, dtype=np.float32).copy()
    return add_white_noise(wave, snr_db, rng)


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"rate must be in [0, 1], got {rate}")


def typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each ASCII letter, with probability ``rate``, is swapped with the following letter or (when
    none follows, and otherwise half the time) replaced by another random lowercase letter."""
    _check_rate(rate)
    chars = list(text)
    i = 0
    while i < len(chars):
        if chars[i].isascii() and chars[i].isalpha() and rng.random() < rate:
            swappable = i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i + 1] != chars[i]
            if swappable and rng.random() < 0.5:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
                i += 2
                continue
            others = [c for c in LETTERS if c != chars[i].lower()]
            chars[i] = others[int(rng.integers(len(others)))]
        i += 1
    return "".join(chars)


def drop_words(text: str, rate: float, rng: np.random.Generator) -> str:
    """Drop each whitespace-separated word with probability ``rate``; at least one word stays."""
    _check_rate(rate)
    words = text.split()
    if not words:
        return text
    kept = [w for w in words if rng.random() >= rate]
    if not kept:
        kept = [words[int(rng.integers(len(words)))]]
    return " ".join(kept)


def jitter(values: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``values`` (steps, channels) + N(0, (scale × the channel's std)²); flat channels stay."""
    if scale < 0:
        raise ConfigError(f"jitter scale must be ≥ 0, got {scale}")
    array = np.asarray(values, dtype=np.float32)
    if scale == 0:
        return array.copy()
    std = array.std(axis=0, keepdims=True)
    return (array + rng.normal(0.0, 1.0, size=array.shape) * scale * std).astype(np.float32)


def stale_steps(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each step after the first, with probability ``rate``, repeats the previous (held) step."""
    _check_rate(rate)
    array = np.asarray(values, dtype=np.float32).copy()
    for step in np.flatnonzero(rng.random(len(array)) < rate):
        if step > 0:
            array[step] = array[step - 1]
    return array


def missing_fields(record: dict[str, Any], rate: float, rng: np.random.Generator) -> dict[str, Any]:
    """Each field, with probability ``rate``, becomes missing (None)."""
    _check_rate(rate)
    return {k: (None if rng.random() < rate else v) for k, v in record.items()}


@dataclass(frozen=True)
class Noise:
    """A named perturbation of one modality kind, with the levels a curve uses by default
    (the first leaves the input clean) and what a level means."""

    name: str
    kind: str
    function: Callable[[Any, float, np.random.Generator], Any]
    levels: tuple[float, ...]
    unit: str

    def apply(self, raw: Any, level: float, rng: np.random.Generator) -> Any:
        """Decode ``raw`` (anything :mod:`omnifuse.io` reads, or text) and perturb it.

        Returns a PIL image, a ``(wave, 16000)`` pair, a string, a
        :class:`~omnifuse.io.Series` or a record: inputs every encoder of the kind accepts.
        """
        if self.kind == "image":
            from omnifuse.io import load_image

            pixels = np.asarray(load_image(raw), dtype=np.uint8)
            return Image.fromarray(self.function(pixels, level, rng))
        if self.kind == "audio":
            from omnifuse.io import load_audio

            wave = load_audio(raw, sample_rate=16_000)
            return (self.function(wave, level, rng), 16_000)
        if self.kind == "series":
            from omnifuse.io import Series, load_series

            series = load_series(raw)
            return Series(self.function(series.values, level, rng), series.rate)
        if self.kind == "tabular":
            return self.function(dict(raw), level, rng)
        from omnifuse.io import load_text

        text = raw if isinstance(raw, str) else load_text(raw)
        return self.function(text, level, rng)


NOISES: dict[str, Noise] = {
    n.name: n
    for n in (
        Noise("gaussian", "image", gaussian_noise, (0.0, 32.0, 64.0, 96.0, 128.0), "σ (0-255)"),
        Noise("occlusion", "image", occlude, (0.0, 0.2, 0.4, 0.6, 0.8), "side / image side"),
        Noise("white-noise", "audio", white_noise, (math.inf, 20.0, 10.0, 5.0, 0.0), "SNR dB"),
        Noise("typos", "text", typos, (0.0, 0.05, 0.1, 0.2, 0.4), "letters changed"),
        Noise("drop-words", "text", drop_words, (0.0, 0.1, 0.2, 0.4, 0.6), "words dropped"),
        Noise("jitter", "series", jitter, (0.0, 0.25, 0.5, 1.0, 2.0), "σ / channel std"),
        Noise("stale", "series", stale_steps, (0.0, 0.1, 0.2, 0.4, 0.6), "steps held"),
        Noise(
            "missing-fields", "tabular", missing_fields, (0.0, 0.1, 0.2, 0.4, 0.6), "fields missing"
        ),
    )
}


def get_noise(name: str) -> Noise:
    try:
        return NOISES[name]
    except KeyError:
        raise ConfigError(f"unknown noise {name!r}; known: {', '.join(NOISES)}") from None


def noises_for(kind: str) -> list[Noise]:
    """The perturbations that apply to a modality kind (image, audio, text)."""
    return [n for n in NOISES.values() if n.kind == kind]


def sample_rng(seed: int, noise: str, level: float, sample: str) -> np.random.Generator:
    """The generator of one sample at one level: the same for a seed whatever the batch order
    and whatever other levels a curve has."""
    parts = [seed, *(zlib.crc32(repr(x).encode()) for x in (noise, float(level), sample))]
    return np.random.default_rng(parts)
