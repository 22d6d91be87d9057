"""Augmentation of raw inputs against overfitting, per modality, before an encoder's preprocess.

- images: a random crop keeping a side fraction in ``[image_crop, 1]`` (then the encoder resizes
  it as usual) and a horizontal flip with probability ``image_flip`` (leave it at 0 for digits
  and text, whose mirror images mean something else);
- audio: a time shift of up to ``audio_shift_s`` seconds either way (the clip keeps its length,
  silence fills in) and white noise at an SNR drawn from ``audio_snr_db``;
- text: each word dropped with probability ``text_word_dropout`` (at least one word stays).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from PIL import Image

from omnifuse.errors import ConfigError
from omnifuse.io import load_audio, load_image, load_text
from omnifuse.speech.noise import add_white_noise

SAMPLE_RATE = 16000


@dataclass
class AugmentConfig:
    image_crop: float = 1.0
    image_flip: float = 0.0
    audio_snr_db: tuple[float, float] | None = None
    audio_shift_s: float = 0.0
    text_word_dropout: float = 0.0

    @classmethod
    def from_dict(cls, data: Any, *, prefix: str = "augment") -> AugmentConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix!r} must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown key(s) {[f'{prefix}.{k}' for k in unknown]}")
        values = dict(data)
        if values.get("audio_snr_db") is not None:
            snr = values["audio_snr_db"]
            if not isinstance(snr, (list, tuple)) or len(snr) != 2:
                raise ConfigError(f"{prefix}.audio_snr_db: expected [low, high] in dB, got {snr!r}")
            values["audio_snr_db"] = (float(snr[0]), float(snr[1]))
        config = cls(**values)
        config.validate(prefix=prefix)
        return config

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["audio_snr_db"] = list(self.audio_snr_db) if self.audio_snr_db else None
        return out

    def validate(self, *, prefix: str = "augment") -> None:
        checks = [
            ("image_crop", 0.0 < self.image_crop <= 1.0, "a fraction in (0, 1]"),
            ("image_flip", 0.0 <= self.image_flip <= 1.0, "a probability"),
            ("audio_shift_s", self.audio_shift_s >= 0.0, "seconds >= 0"),
            ("text_word_dropout", 0.0 <= self.text_word_dropout < 1.0, "a probability below 1"),
        ]
        snr = self.audio_snr_db
        checks.append(
            ("audio_snr_db", snr is None or snr[0] <= snr[1], "[low, high] with low <= high")
        )
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"{prefix}.{key}: expected {expected}, got {getattr(self, key)!r}"
                )


class Augmenter:
    """``augmenter(kind, raw, rng)`` → a changed raw input of the same kind (unchanged for kinds
    with nothing to do, so inputs are decoded only when augmented)."""

    def __init__(self, config: AugmentConfig) -> None:
        config.validate()
        self.config = config

    def __call__(self, kind: str, raw: Any, rng: np.random.Generator) -> Any:
        c = self.config
        if kind == "image" and (c.image_crop < 1.0 or c.image_flip > 0.0):
            return self.image(load_image(raw), rng)
        if kind == "audio" and (c.audio_snr_db is not None or c.audio_shift_s > 0.0):
            return self.audio(load_audio(raw, sample_rate=SAMPLE_RATE), rng), SAMPLE_RATE
        if kind == "text" and c.text_word_dropout > 0.0:
            return self.text(load_text(raw), rng)
        return raw

    def image(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if self.config.image_crop < 1.0:
            side = rng.uniform(self.config.image_crop, 1.0)
            width, height = max(1, round(img.width * side)), max(1, round(img.height * side))
            left = int(rng.integers(0, img.width - width + 1))
            top = int(rng.integers(0, img.height - height + 1))
            img = img.crop((left, top, left + width, top + height))
        if rng.random() < self.config.image_flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img

    def audio(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.config.audio_shift_s > 0.0:
            wave = time_shift(
                wave, int(rng.uniform(-1.0, 1.0) * self.config.audio_shift_s * SAMPLE_RATE)
            )
        if self.config.audio_snr_db is not None:
            wave = add_white_noise(wave, float(rng.uniform(*self.config.audio_snr_db)), rng)
        return wave

    def text(self, text: str, rng: np.random.Generator) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        keep = rng.random(len(words)) >= self.config.text_word_dropout
        if not keep.any():
            keep[int(rng.integers(len(words)))] = True
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)


def time_shift(wave: np.ndarray, offset: int) -> np.ndarray:
    """Delay (``offset`` > 0) or advance the clip by ``offset`` samples, keeping its length."""
    out = np.zeros_like(wave)
    if offset >= len(wave) or -offset >= len(wave):
        return out
    if offset >= 0:
        out[offset:] = wave[: len(wave) - offset]
    else:
        out[:offset] = wave[-offset:]
    return out
