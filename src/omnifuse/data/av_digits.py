"""AV digits: scikit-learn's 8×8 digit images paired with spoken digits (an AV-MNIST-style set).

Each sample is one handwritten digit image and one spoken digit word with the same label. Both
modalities are made imperfect on purpose so that fusing them pays off:

- the image is degraded by Gaussian pixel noise and a zeroed square (an occlusion) at a random
  place; ``degrade=False`` keeps the clean digit (pixel values 0..16 scaled to 0..255);
- the audio is one of the words "zero".."nine" spoken by a TTS voice at a random rate and pitch,
  shifted by random leading and trailing silence, with white noise at a random SNR.

Splits are fixed for a seed (70/15/15, stratified by digit). Source images are split disjointly,
and about a quarter of each engine's voices (two espeak-ng and one flite voice on a full install)
never speak in train or val: they are the test voices. ``label`` is the digit as a string
("0".."9"). Images are 8×8 grayscale PNG unless ``upscale`` enlarges them (nearest neighbour);
audio is 16 kHz mono PCM16 WAV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data._common import child_rng, split_counts, write_gray_png
from omnifuse.data.builders import datasets
from omnifuse.data.schema import SPLITS, DatasetInfo, ManifestSchema, write_manifest
from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.progress import track
from omnifuse.speech.noise import add_white_noise
from omnifuse.speech.tts import SAMPLE_RATE, Voice, default_voices, synthesize, write_wav

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RATES = tuple(range(120, 221, 10))
PITCHES = tuple(range(30, 71, 10))
HELD_OUT_FRACTION = 0.25
PEAK = 0.5
MAX_LEAD_S = 0.25
MAX_TAIL_S = 0.25
MANIFEST = "manifest.jsonl"
SCHEMA = ManifestSchema(
    modalities={"image": "image", "audio": "audio"},
    labels=["label"],
    extra=["word", "voice", "rate", "pitch", "snr_db", "lead_s", "image_index", "occlusion"],
)

_VOICES, _IMAGES, _PLAN, _PIXELS, _NOISE = range(5)


@dataclass(frozen=True)
class Degradation:
    """How images are spoiled: pixel noise std (0..255 scale) and the side of a zeroed square."""

    noise_std: float = 64.0
    occlusion: int = 3

    def apply(self, pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
        """Return the degraded uint8 image and the occlusion box ``[top, left, side]``."""
        image = pixels.astype(np.float64) + rng.normal(0.0, self.noise_std, size=pixels.shape)
        side = min(self.occlusion, *pixels.shape)
        top = int(rng.integers(0, pixels.shape[0] - side + 1))
        left = int(rng.integers(0, pixels.shape[1] - side + 1))
        image[top : top + side, left : left + side] = 0.0
        return np.clip(np.round(image), 0, 255).astype(np.uint8), [top, left, side]


@dataclass(frozen=True)
class SamplePlan:
    """Everything random about one sample, drawn before any file is written."""

    index: int
    split: str
    image_index: int
    label: int
    voice: Voice
    snr_db: float
    lead: int
    tail: int

    @property
    def id(self) -> str:
        return f"avd-{self.index:05d}"

    @property
    def word(self) -> str:
        return DIGIT_WORDS[self.label]


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits as uint8 images (0..16 scaled to 0..255) and int labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def split_voices(voices: Sequence[Voice], seed: int) -> tuple[list[Voice], list[Voice]]:
    """Hold a quarter (rounded up) of each engine's voices out for test; one-voice engines stay."""
    rng = child_rng(seed, _VOICES)
    train: list[Voice] = []
    test: list[Voice] = []
    for engine in dict.fromkeys(v.engine for v in voices):
        group = [v for v in voices if v.engine == engine]
        n_out = math.ceil(len(group) * HELD_OUT_FRACTION) if len(group) > 1 else 0
        out = set(rng.choice(len(group), size=n_out, replace=False).tolist())
        train += [v for i, v in enumerate(group) if i not in out]
        test += [v for i, v in enumerate(group) if i in out]
    if not test or not train:
        raise ConfigError("av-digits needs at least two voices of one TTS engine")
    return train, test


def split_images(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Disjoint train/val/test pools of source image indices, stratified by digit."""
    rng = child_rng(seed, _IMAGES)
    pools: dict[str, list[int]] = {split: [] for split in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split, count in split_counts(len(members)).items():
            pools[split] += members[start : start + count].tolist()
            start += count
    return {split: rng.permutation(np.array(pool)) for split, pool in pools.items()}


def _draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` items of ``pool``, each used once before any is reused."""
    rounds = [rng.permutation(pool) for _ in range(max(1, math.ceil(count / len(pool))))]
    return np.concatenate(rounds)[:count]


def _voice_variant(voice: Voice, rng: np.random.Generator) -> Voice:
    """The voice at a random rate and, for espeak-ng (flite ignores pitch), a random pitch."""
    rate = int(rng.choice(RATES))
    pitch = int(rng.choice(PITCHES)) if voice.engine == "espeak-ng" else Voice().pitch
    return Voice(voice.engine, voice.name, rate, pitch)


def plan_samples(
    size: int,
    seed: int,
    labels: np.ndarray,
    voices: tuple[list[Voice], list[Voice]],
    snr_range: tuple[float, float],
) -> list[SamplePlan]:
    """Draw every sample's split, source image, voice, SNR and silence padding."""
    rng = child_rng(seed, _PLAN)
    image_pools = split_images(labels, seed)
    train_voices, test_voices = voices
    plans: list[SamplePlan] = []
    for split, count in split_counts(size).items():
        pool_voices = test_voices if split == "test" else train_voices
        for image_index in _draw(image_pools[split], count, rng).tolist():
            voice = _voice_variant(pool_voices[int(rng.integers(len(pool_voices)))], rng)
            plans.append(
                SamplePlan(
                    index=len(plans),
                    split=split,
                    image_index=int(image_index),
                    label=int(labels[image_index]),
                    voice=voice,
                    snr_db=round(float(rng.uniform(*snr_range)), 2),
                    lead=int(rng.integers(0, int(MAX_LEAD_S * SAMPLE_RATE) + 1)),
                    tail=int(rng.integers(0, int(MAX_TAIL_S * SAMPLE_RATE) + 1)),
                )
            )
    return plans


def synthesize_all(
    plans: Sequence[SamplePlan], workers: int
) -> dict[tuple[Voice, str], np.ndarray]:
    """Speak each distinct (voice, word) once; the engines run as parallel subprocesses."""
    keys = list(dict.fromkeys((plan.voice, plan.word) for plan in plans))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        waves = pool.map(lambda key: synthesize(key[1], key[0]), keys)
        return dict(zip(keys, track(waves, "speaking digits", total=len(keys)), strict=True))


def noisy_utterance(clean: np.ndarray, plan: SamplePlan, seed: int) -> np.ndarray:
    """Peak-normalise the clean word, pad it with silence, add white noise at the plan's SNR."""
    peak = float(np.max(np.abs(clean))) or 1.0
    wave = np.concatenate(
        [np.zeros(plan.lead, np.float32), clean * (PEAK / peak), np.zeros(plan.tail, np.float32)]
    ).astype(np.float32)
    return add_white_noise(wave, plan.snr_db, child_rng(seed, _NOISE, plan.index))


def _row(plan: SamplePlan, occlusion: list[int] | None) -> dict[str, Any]:
    return {
        "id": plan.id,
        "split": plan.split,
        "image": f"images/{plan.id}.png",
        "audio": f"audio/{plan.id}.wav",
        "label": str(plan.label),
        "word": plan.word,
        "voice": f"{plan.voice.engine}:{plan.voice.name}",
        "rate": plan.voice.rate,
        "pitch": plan.voice.pitch if plan.voice.engine == "espeak-ng" else None,
        "snr_db": plan.snr_db,
        "lead_s": plan.lead / SAMPLE_RATE,
        "image_index": plan.image_index,
        "occlusion": occlusion,
    }


@datasets.register("av-digits")
def build_av_digits(
    out: Path,
    *,
    seed: int = 0,
    size: int = 100,
    degrade: bool = True,
    noise_std: float = Degradation.noise_std,
    occlusion: int = Degradation.occlusion,
    snr_range: tuple[float, float] = (0.0, 20.0),
    upscale: int = 1,
    workers: int = 4,
) -> DatasetInfo:
    """Digit images (degraded) paired with noisy spoken digits; test voices unseen in training."""
    if size < 1 or upscale < 1 or snr_range[0] > snr_range[1]:
        raise ConfigError(f"bad av-digits options: size={size}, upscale={upscale}, {snr_range=}")
    voices = default_voices()
    if not voices:
        raise MissingDependencyError("a TTS engine (espeak-ng or flite)", apt="espeak-ng")
    out = Path(out)
    pixels, labels = load_digit_images()
    train_voices, test_voices = split_voices(voices, seed)
    plans = plan_samples(size, seed, labels, (train_voices, test_voices), snr_range)
    spoken = synthesize_all(plans, workers)
    degradation = Degradation(noise_std, occlusion) if degrade else None
    rows = []
    for plan in track(plans, "writing av-digits"):
        image = pixels[plan.image_index]
        box = None
        if degradation is not None:
            image, box = degradation.apply(image, child_rng(seed, _PIXELS, plan.index))
        if upscale > 1:
            image = np.kron(image, np.ones((upscale, upscale), np.uint8))
        write_gray_png(out / f"images/{plan.id}.png", image)
        write_wav(
            out / f"audio/{plan.id}.wav", noisy_utterance(spoken[plan.voice, plan.word], plan, seed)
        )
        rows.append(_row(plan, box))
    write_manifest(out / MANIFEST, rows, SCHEMA)
    info = DatasetInfo(
        name="av-digits",
        seed=seed,
        size=size,
        manifests={"classification": MANIFEST},
        description=__doc__.strip().splitlines()[0] if __doc__ else "",
        params={
            "degrade": degrade,
            "noise_std": noise_std if degrade else 0.0,
            "occlusion": occlusion if degrade else 0,
            "snr_range": list(snr_range),
            "upscale": upscale,
            "image_size": [8 * upscale, 8 * upscale],
            "sample_rate": SAMPLE_RATE,
            "train_voices": [f"{v.engine}:{v.name}" for v in train_voices],
            "test_voices": [f"{v.engine}:{v.name}" for v in test_voices],
            "label": "digit as a string, '0'..'9'",
        },
    )
    info.write(out)
    return info
