"""Affect: spoken sentences whose words and synthesised delivery together carry the emotion.

Each sample is one sentence, as text and as speech. The label is one of ``happy``, ``calm``,
``angry``, ``sad`` — pleasant or unpleasant (valence) crossed with stirred-up or quiet
(arousal):

- **the words** carry valence: a pleasant or an unpleasant remark about an everyday thing
  (:mod:`omnifuse.data.affect_words`), never arousal;
- **the delivery** is synthesised by espeak-ng and carries arousal strongly — happy and angry
  are fast and loud, calm and sad slow and soft — and valence only weakly: happy is spoken a
  little higher and with a wider pitch range than angry, sad lower and flatter than calm
  (:data:`DELIVERY`; every sample's rate, pitch, range and level are jittered around these).

In about 15 % of the samples (``agreement`` = ``disagree``) the words say the opposite of the
delivery — pleasant words delivered angrily or sadly (sarcasm, complaint), unpleasant words
delivered cheerfully or calmly (masking) — and the label follows the delivery. So words alone
cannot tell arousal, the voice alone tells valence only roughly, and the disagreeing cases need
the voice to be trusted over the words.

**The delivery is synthetic.** espeak-ng speaks each sentence at the sample's rate (words per
minute, ``-s``), pitch (0–99, ``-p``) and pitch range (its SSML ``<prosody range>``, percent of
the voice's own); the level is a gain applied afterwards (``gain_db``, relative to a peak of
0.5), then white noise at a fixed level (``noise_dbfs``, independent of the speech) and random
leading silence are added. Real emotional speech differs in many more ways (voice quality,
timing of stresses); this dataset tests fusion, not emotion recognition in the wild.

Splits (70/15/15) have disjoint sentences. Train and validation are spoken by
:data:`TRAIN_VOICES`; the test split only by :data:`TEST_VOICES`, which combine accents and
voice variants that never occur in training. Audio is 16 kHz mono PCM16 WAV.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data._common import child_rng, split_counts
from omnifuse.data.affect_words import WORDS, sentences
from omnifuse.data.builders import datasets
from omnifuse.data.schema import SPLITS, DatasetInfo, ManifestSchema, write_manifest
from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.progress import track
from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize, write_wav

LABELS = ("happy", "calm", "angry", "sad")
VALENCE = {"happy": "pleasant", "calm": "pleasant", "angry": "unpleasant", "sad": "unpleasant"}
TRAIN_VOICES = (
    "en-us",
    "en+f2",
    "en-us+m1",
    "en-gb-x-rp+f4",
    "en-us-nyc+m7",
    "en-gb-scotland+f1",
    "en-gb-x-gbcwmd+m5",
    "en-us+f5",
)
TEST_VOICES = ("en-029+f3", "en-gb-x-gbclan+m3", "en-gb-x-gbclan+f3")
"""Held out: the Caribbean and Lancaster accents and the f3 and m3 variants are never in
train or validation."""


@dataclass(frozen=True)
class Delivery:
    """How a sentence is spoken: rate (words/min), pitch (0–99) and pitch range (%) for
    espeak-ng, and the level as a gain in dB."""

    rate: float
    pitch: float
    pitch_range: float
    gain_db: float


DELIVERY = {
    "happy": Delivery(rate=195, pitch=64, pitch_range=170, gain_db=0.0),
    "angry": Delivery(rate=195, pitch=44, pitch_range=90, gain_db=0.0),
    "calm": Delivery(rate=135, pitch=52, pitch_range=90, gain_db=-12.0),
    "sad": Delivery(rate=125, pitch=36, pitch_range=50, gain_db=-12.0),
}
"""The mean delivery of each label; a sample's is drawn around it with :data:`JITTER`."""
JITTER = Delivery(rate=15, pitch=8, pitch_range=20, gain_db=3.0)
"""Standard deviations of the per-sample delivery."""
LIMITS = {"rate": (80, 320), "pitch": (0, 99), "pitch_range": (10, 250), "gain_db": (-30.0, 3.0)}
PEAK = 0.5
NOISE_DBFS = (-72.0, -60.0)
MAX_LEAD_S = 0.3
DISAGREE_FRACTION = 0.15
MANIFEST = "manifest.jsonl"
EXTRA = ["agreement", "words", "voice", "rate", "pitch", "pitch_range", "gain_db", "noise_dbfs"]
SCHEMA = ManifestSchema(
    modalities={"text": "text", "audio": "audio"}, labels=["label"], extra=[*EXTRA, "lead_s"]
)

_SENTENCES, _PLAN, _NOISE = range(3)


@dataclass(frozen=True)
class AffectPlan:
    """Everything random about one sample, drawn before any audio is made."""

    index: int
    split: str
    label: str
    agree: bool
    text: str
    voice: Voice
    gain_db: float
    noise_dbfs: float
    lead: int

    @property
    def id(self) -> str:
        return f"affect-{self.index:05d}"

    @property
    def words(self) -> str:
        return words_for(self.label, self.agree)


def words_for(label: str, agree: bool) -> str:
    """The valence of the words: the label's own when they agree, the other one otherwise."""
    valence = VALENCE[label]
    return valence if agree else next(w for w in WORDS if w != valence)


def sentence_pools(seed: int) -> dict[tuple[str, str], list[str]]:
    """Disjoint (split, valence) pools of sentences: each valence's sentences shuffled and cut
    70/15/15."""
    rng = child_rng(seed, _SENTENCES)
    pools: dict[tuple[str, str], list[str]] = {}
    for words in WORDS:
        shuffled = [str(s) for s in rng.permutation(sentences(words))]
        start = 0
        for split, count in split_counts(len(shuffled)).items():
            pools[split, words] = shuffled[start : start + count]
            start += count
    return pools


def draw_delivery(label: str, rng: np.random.Generator) -> Delivery:
    """The label's mean delivery with per-sample jitter, within espeak-ng's limits."""
    mean = DELIVERY[label]
    values = {}
    for name, (low, high) in LIMITS.items():
        value = rng.normal(getattr(mean, name), getattr(JITTER, name))
        values[name] = float(np.clip(value, low, high))
    return Delivery(
        rate=round(values["rate"]),
        pitch=round(values["pitch"]),
        pitch_range=round(values["pitch_range"]),
        gain_db=round(values["gain_db"], 2),
    )


def _labels(count: int, rng: np.random.Generator) -> list[tuple[str, bool]]:
    """Balanced labels in random order; :data:`DISAGREE_FRACTION` of them (rounded) disagree."""
    labels = [LABELS[i % len(LABELS)] for i in range(count)]
    disagree = round(DISAGREE_FRACTION * count)
    agree = [i >= disagree for i in range(count)]
    order = rng.permutation(count)
    return [(labels[i], agree[j]) for i, j in zip(order, rng.permutation(count), strict=True)]


def plan_samples(size: int, seed: int) -> list[AffectPlan]:
    """Draw every sample's split, label, agreement, sentence, voice and delivery."""
    rng = child_rng(seed, _PLAN)
    pools = sentence_pools(seed)
    used = {key: 0 for key in pools}
    plans: list[AffectPlan] = []
    for split, count in split_counts(size).items():
        voices = TEST_VOICES if split == "test" else TRAIN_VOICES
        for label, agree in _labels(count, rng):
            words = words_for(label, agree)
            pool = pools[split, words]
            text = pool[used[split, words] % len(pool)]
            used[split, words] += 1
            delivery = draw_delivery(label, rng)
            name = voices[int(rng.integers(len(voices)))]
            voice = Voice(
                "espeak-ng",
                name,
                int(delivery.rate),
                int(delivery.pitch),
                int(delivery.pitch_range),
            )
            plans.append(
                AffectPlan(
                    index=len(plans),
                    split=split,
                    label=label,
                    agree=agree,
                    text=text,
                    voice=voice,
                    gain_db=delivery.gain_db,
                    noise_dbfs=round(float(rng.uniform(*NOISE_DBFS)), 2),
                    lead=int(rng.integers(0, int(MAX_LEAD_S * SAMPLE_RATE) + 1)),
                )
            )
    return plans


def render(clean: np.ndarray, plan: AffectPlan, seed: int) -> np.ndarray:
    """Peak-normalise, apply the gain, prepend silence and add noise at a fixed level."""
    peak = float(np.max(np.abs(clean))) or 1.0
    speech = clean.astype(np.float64) * (PEAK * 10 ** (plan.gain_db / 20) / peak)
    wave = np.concatenate([np.zeros(plan.lead), speech])
    noise_rms = 10 ** (plan.noise_dbfs / 20)
    wave += child_rng(seed, _NOISE, plan.index).normal(0.0, noise_rms, size=wave.shape)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def speak_all(plans: Sequence[AffectPlan], workers: int) -> list[np.ndarray]:
    """Synthesise every sentence; espeak-ng runs as parallel subprocesses."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        waves = pool.map(lambda plan: synthesize(plan.text, plan.voice), plans)
        return list(track(waves, "speaking affect sentences", total=len(plans)))


def _row(plan: AffectPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "split": plan.split,
        "text": plan.text,
        "audio": f"audio/{plan.id}.wav",
        "label": plan.label,
        "agreement": "agree" if plan.agree else "disagree",
        "words": plan.words,
        "voice": plan.voice.name,
        "rate": plan.voice.rate,
        "pitch": plan.voice.pitch,
        "pitch_range": plan.voice.pitch_range,
        "gain_db": plan.gain_db,
        "noise_dbfs": plan.noise_dbfs,
        "lead_s": plan.lead / SAMPLE_RATE,
    }


@datasets.register("affect")
def build_affect(out: Path, *, seed: int = 0, size: int = 1200, workers: int = 4) -> DatasetInfo:
    """Spoken sentences labelled happy/calm/angry/sad by their words and espeak-ng delivery.

    The delivery is synthesised (rate, pitch, pitch range, level); test voices are unseen in
    training.
    """
    if size < len(SPLITS):
        raise ConfigError(f"affect needs a size of at least {len(SPLITS)}, got {size}")
    if shutil.which("espeak-ng") is None:
        raise MissingDependencyError("the TTS engine espeak-ng", apt="espeak-ng")
    out = Path(out)
    plans = plan_samples(size, seed)
    waves = speak_all(plans, workers)
    for plan, clean in zip(track(plans, "writing affect"), waves, strict=True):
        write_wav(out / f"audio/{plan.id}.wav", render(clean, plan, seed))
    write_manifest(out / MANIFEST, [_row(plan) for plan in plans], SCHEMA)
    info = DatasetInfo(
        name="affect",
        seed=seed,
        size=size,
        manifests={"classification": MANIFEST},
        description=__doc__.strip().splitlines()[0] if __doc__ else "",
        params={
            "labels": list(LABELS),
            "valence_of_words": VALENCE,
            "delivery": {label: d.__dict__ for label, d in DELIVERY.items()},
            "jitter": JITTER.__dict__,
            "disagree_fraction": DISAGREE_FRACTION,
            "train_voices": [f"espeak-ng:{v}" for v in TRAIN_VOICES],
            "test_voices": [f"espeak-ng:{v}" for v in TEST_VOICES],
            "sample_rate": SAMPLE_RATE,
            "synthetic_delivery": "espeak-ng rate/pitch/pitch range; level as a gain; noise",
        },
    )
    info.write(out)
    return info
