"""The affect of a spoken question: what its words say and how it was said, as one note.

The words are read by VADER (:mod:`omnifuse.encoders.sentiment`): positive at a compound score
of 0.05 or more, negative at −0.05 or less (VADER's own thresholds), neutral between. The
recording is measured with Praat (:mod:`omnifuse.speech.prosody`) and described in words an LLM
can use — pace, loudness, pitch and its liveliness, pauses — each with its measured value:

``affect: the voice is fast (7.2 syllables/s), loud (70 dB), lively pitch (mean 182 Hz,
range 9 semitones); the words are negative (VADER -0.62)``

The bounds are rough and fixed (:data:`BOUNDS`): ordinary speech has 3.5 to 6 syllable nuclei
a second by this count (espeak-ng's default 160 words a minute gives about 5.5); loudness is
the level of the recording, which also depends on the microphone and its distance, so "loud"
means a loud recording. Pitch is described by its range in semitones, which does not depend on
whether the voice is a high or a low one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from omnifuse.assistant.notes import ToolNote
from omnifuse.encoders.sentiment import read_sentiment
from omnifuse.io import DecodeLimits, load_audio
from omnifuse.speech.prosody import SAMPLE_RATE, analyse

NAME = "affect"
VADER_POSITIVE = 0.05


@dataclass(frozen=True)
class Bounds:
    """Where a measurement stops being ordinary: below ``low`` or at/above ``high``."""

    low: float
    high: float


BOUNDS = {
    "speaking_rate": Bounds(3.5, 6.0),
    "intensity_mean_db": Bounds(58.0, 66.0),
    "pitch_range_st": Bounds(4.0, 8.0),
    "pause_ratio": Bounds(0.0, 0.15),
}


def describe_voice(measures: dict[str, float]) -> list[str]:
    """Words for the pace, loudness, pitch and pauses of a measured recording."""
    if measures["voiced_fraction"] == 0:
        return ["not measurable: no voiced speech"]
    rate, level = measures["speaking_rate"], measures["intensity_mean_db"]
    spread, hz = measures["pitch_range_st"], measures["pitch_mean_hz"]
    pace = _grade("speaking_rate", rate, ("slow", "moderate pace", "fast"))
    loud = _grade("intensity_mean_db", level, ("soft", "moderate loudness", "loud"))
    pitch = _grade("pitch_range_st", spread, ("flat pitch", "ordinary pitch", "lively pitch"))
    words = [
        f"{pace} ({rate:.1f} syllables/s)",
        f"{loud} ({level:.0f} dB)",
        f"{pitch} (mean {hz:.0f} Hz, range {spread:.0f} semitones)",
    ]
    if measures["pause_ratio"] >= BOUNDS["pause_ratio"].high:
        words.append(f"many pauses ({100 * measures['pause_ratio']:.0f} % of the time)")
    return words


def _grade(name: str, value: float, words: tuple[str, str, str]) -> str:
    bounds = BOUNDS[name]
    return words[0] if value < bounds.low else words[2] if value >= bounds.high else words[1]


def describe_words(compound: float) -> str:
    """VADER's verdict on the words, with its compound score."""
    if compound >= VADER_POSITIVE:
        verdict = "positive"
    elif compound <= -VADER_POSITIVE:
        verdict = "negative"
    else:
        verdict = "neutral"
    return f"{verdict} (VADER {compound:+.2f})"


def hear_affect(transcript: str, audio: Any, limits: DecodeLimits | None = None) -> ToolNote:
    """The affect note of a recording and its transcript; its ``seconds`` is what it cost.

    A recording that cannot be measured gives a note with ``data.error`` (which the LLM does
    not read) rather than failing the question it came with.
    """
    start = time.perf_counter()
    try:
        wave = load_audio(audio, sample_rate=SAMPLE_RATE, limits=limits)
        measures = analyse(wave).describe()
    except (ValueError, RuntimeError) as err:  # InputError, or Praat giving up
        error = f"{type(err).__name__}: {err}"
        return ToolNote(NAME, "failed", data={"error": error}, seconds=time.perf_counter() - start)
    parts = [f"the voice is {', '.join(describe_voice(measures))}"]
    data: dict[str, Any] = {"voice": {k: round(v, 3) for k, v in measures.items()}}
    if transcript.strip():
        compound = read_sentiment(transcript).scores["compound"]
        parts.append(f"the words are {describe_words(compound)}")
        data["words"] = {"vader_compound": compound}
    return ToolNote(NAME, "; ".join(parts), data=data, seconds=time.perf_counter() - start)
