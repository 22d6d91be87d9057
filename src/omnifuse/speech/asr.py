"""Speech recognition behind one interface (registry ``asrs``).

``faster-whisper`` (Whisper tiny.en, int8 CTranslate2) is the default; ``pocketsphinx`` is a
light fallback that needs no neural runtime. Every engine takes the raw audio forms
:func:`omnifuse.io.load_audio` accepts (a path, encoded bytes or an ``(array, rate)`` pair), so
size and duration limits and typed errors are the same for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from omnifuse.errors import EmptyInputError
from omnifuse.io.audio import load_audio
from omnifuse.io.limits import DecodeLimits
from omnifuse.registry import Registry

SAMPLE_RATE = 16_000
"""Every engine here decodes 16 kHz mono."""


@dataclass(frozen=True)
class Segment:
    """A stretch of recognised speech, times in seconds from the start of the clip."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """What an engine heard: the whole text, its timed segments, the clip length and language."""

    text: str
    segments: list[Segment] = field(default_factory=list)
    duration_s: float = 0.0
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ASR(ABC):
    """A speech recogniser. Subclasses implement :meth:`transcribe_wave` on 16 kHz float32."""

    name: str = ""

    def __init__(self, *, limits: DecodeLimits | None = None) -> None:
        self.limits = limits

    def transcribe(self, raw_audio: Any, *, name: str | None = None) -> Transcript:
        """Decode ``raw_audio`` (path, bytes or ``(array, rate)``) and recognise its speech."""
        wave = load_audio(raw_audio, sample_rate=SAMPLE_RATE, limits=self.limits, name=name)
        if wave.size == 0:
            raise EmptyInputError("the clip holds no samples", source=name, modality="audio")
        return self.transcribe_wave(wave)

    @abstractmethod
    def transcribe_wave(self, wave: np.ndarray) -> Transcript:
        """Recognise a mono float32 waveform at :data:`SAMPLE_RATE`."""


def join_segments(segments: list[Segment]) -> str:
    """The transcript text: segment texts joined by single spaces."""
    return " ".join(s.text.strip() for s in segments if s.text.strip())


asrs: Registry[ASR] = Registry(
    "asr", builtin_modules=("omnifuse.speech.asr_whisper", "omnifuse.speech.asr_sphinx")
)

DEFAULT_ASR = "faster-whisper"


def create_asr(name: str = DEFAULT_ASR, **cfg: Any) -> ASR:
    """Build a registered engine, e.g. ``create_asr("pocketsphinx")``."""
    return asrs.create(name, **cfg)


def list_asrs() -> list[str]:
    return asrs.list()
