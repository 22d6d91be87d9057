"""Spoken captions and questions: many voices, rates and pitches, optional noise, in parallel.

The voice of the ``i``-th utterance rotates over the available voices, and its rate and pitch come
from a generator seeded by ``(seed, i)``, so the same build speaks every line the same way. Both
engines are deterministic for the same arguments; rates and pitches are drawn from short lists so
that repeated lines ("how many shapes are there?") with the same voice are synthesised once.
Engines run as subprocesses, so a thread pool overlaps them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from omnifuse.errors import MissingDependencyError
from omnifuse.speech.noise import add_white_noise
from omnifuse.speech.tts import Voice, default_voices, synthesize, write_wav

RATES: tuple[int, ...] = (130, 150, 170, 190)
PITCHES: tuple[int, ...] = (30, 45, 60, 75)
VOICE_STREAM = 100
NOISE_STREAM = 101


def resolve_voices(voices: Sequence[Voice] | None) -> list[Voice]:
    """The voices to rotate over: those given, else every voice installed on this machine."""
    chosen = list(voices) if voices is not None else default_voices()
    if not chosen:
        raise MissingDependencyError("a TTS engine (espeak-ng or flite)", apt="espeak-ng flite")
    return chosen


def voice_for(index: int, voices: Sequence[Voice], seed: int) -> Voice:
    """The voice, rate and pitch of utterance ``index``."""
    base = voices[index % len(voices)]
    rng = np.random.default_rng([seed, VOICE_STREAM, index])
    rate = RATES[int(rng.integers(len(RATES)))]
    pitch = PITCHES[int(rng.integers(len(PITCHES)))]
    return Voice(base.engine, base.name, rate, pitch)


class Speaker:
    """Synthesises lines on a thread pool, once per distinct (text, voice), and writes WAV files."""

    def __init__(
        self, *, seed: int, noise_snr_db: float | None, workers: int | None = None
    ) -> None:
        self.seed = seed
        self.noise_snr_db = noise_snr_db
        self._pool = ThreadPoolExecutor(max_workers=workers or min(8, 2 * (os.cpu_count() or 1)))
        self._cache: dict[tuple[str, str], Future[np.ndarray]] = {}

    def request(self, text: str, voice: Voice) -> None:
        """Start synthesising ``text`` with ``voice`` unless it is already under way."""
        key = (text, voice.key)
        if key not in self._cache:
            self._cache[key] = self._pool.submit(synthesize, text, voice)

    def wave(self, text: str, voice: Voice, index: int) -> np.ndarray:
        """Utterance ``index`` (16 kHz), with noise when a noise level was given."""
        self.request(text, voice)
        wave = self._cache[(text, voice.key)].result()
        if self.noise_snr_db is not None:
            rng = np.random.default_rng([self.seed, NOISE_STREAM, index])
            wave = add_white_noise(wave, self.noise_snr_db, rng)
        return wave

    def write(self, path: Path, text: str, voice: Voice, index: int) -> None:
        """Write utterance ``index`` to ``path``."""
        write_wav(path, self.wave(text, voice, index))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Speaker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
