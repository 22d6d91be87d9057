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

from omnifuse.errors import ConfigError, EmptyInputError
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
    """A speech recogniser. Subclasses implement :meth:`transcribe_wave` on 16 kHz float32.

    ``languages`` lists the ISO 639-1 codes the engine recognises and ``takes_prompt`` says
    whether it can be steered by a prompt (spellings, names, style); :meth:`transcribe` refuses
    a language or a prompt the engine cannot honour rather than ignoring it.
    """

    name: str = ""
    takes_prompt: bool = False

    def __init__(self, *, limits: DecodeLimits | None = None) -> None:
        self.limits = limits

    @property
    def languages(self) -> tuple[str, ...]:
        return ("en",)

    def transcribe(
        self,
        raw_audio: Any,
        *,
        name: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
    ) -> Transcript:
        """Decode ``raw_audio`` (path, bytes or ``(array, rate)``) and recognise its speech,
        in ``language`` (an ISO 639-1 code; None: the engine's own choice) and steered by
        ``prompt`` (text the speech is likely to resemble) when given."""
        language = self.check_options(language, prompt)
        wave = load_audio(raw_audio, sample_rate=SAMPLE_RATE, limits=self.limits, name=name)
        if wave.size == 0:
            raise EmptyInputError("the clip holds no samples", source=name, modality="audio")
        if language is None and not prompt:
            return self.transcribe_wave(wave)
        return self.transcribe_wave(wave, language=language, prompt=prompt or None)

    def check_options(self, language: str | None, prompt: str | None) -> str | None:
        """``language`` normalised (lower case); :class:`ConfigError` naming what this engine
        cannot honour."""
        if language is not None:
            language = language.strip().lower()
            if language not in self.languages:
                known = ", ".join(self.languages)
                raise ConfigError(
                    f"{self.name or type(self).__name__} transcribes {known} only; "
                    f"language {language!r} is not supported"
                )
        if prompt and not self.takes_prompt:
            raise ConfigError(
                f"{self.name or type(self).__name__} cannot be steered by a prompt; "
                "send the request without one"
            )
        return language

    @abstractmethod
    def transcribe_wave(
        self, wave: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """Recognise a mono float32 waveform at :data:`SAMPLE_RATE` (``language`` and
        ``prompt`` already checked by :meth:`check_options`)."""


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
