"""``pocketsphinx``: CMU PocketSphinx 5 with its bundled US-English model.

No neural runtime and a few megabytes of model: a light fallback, fast but weak on natural
speech. A decoder is built once per process (its model load is the slow part) and used under a
lock, since a PocketSphinx decoder holds one utterance at a time.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import numpy as np

from omnifuse.errors import MissingDependencyError
from omnifuse.io.limits import DecodeLimits
from omnifuse.speech.asr import ASR, SAMPLE_RATE, Segment, Transcript, asrs, join_segments

FRAMES_PER_SECOND = 100
"""PocketSphinx's default frame rate (``-frate``); segment frames convert to seconds by it."""
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
_ALTERNATE = re.compile(r"\(\d+\)$")
_LOCK = threading.Lock()


@functools.cache
def sphinx_decoder() -> Any:
    """The shared decoder with the bundled en-us acoustic model, dictionary and language model."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise MissingDependencyError("pocketsphinx", extra="llm") from None
    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")


def to_pcm16(wave: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM bytes of a float waveform in [-1, 1]."""
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def word_of(token: str) -> str | None:
    """The spoken word of a segment token, or None for silence and fillers; ``word(2)`` (an
    alternate pronunciation) becomes ``word``."""
    if _FILLER.match(token):
        return None
    return _ALTERNATE.sub("", token)


class PocketSphinxASR(ASR):
    """PocketSphinx en-us: lower-case words without punctuation, one segment per word."""

    name = "pocketsphinx"

    def __init__(self, *, limits: DecodeLimits | None = None) -> None:
        super().__init__(limits=limits)

    def transcribe_wave(
        self, wave: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        with _LOCK:
            decoder = sphinx_decoder()
            decoder.start_utt()
            decoder.process_raw(to_pcm16(wave), no_search=False, full_utt=True)
            decoder.end_utt()
            tokens = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
        segments = []
        for token, start, end in tokens:
            word = word_of(token)
            if word:
                segments.append(
                    Segment(start / FRAMES_PER_SECOND, (end + 1) / FRAMES_PER_SECOND, word)
                )
        return Transcript(
            text=join_segments(segments),
            segments=segments,
            duration_s=len(wave) / SAMPLE_RATE,
            language="en",
        )


@asrs.register("pocketsphinx")
def pocketsphinx(**cfg: Any) -> ASR:
    """PocketSphinx 5 with its bundled en-us model: light and fast, weaker on natural speech."""
    return PocketSphinxASR(**cfg)
