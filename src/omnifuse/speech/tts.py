"""Text-to-speech through the system engines espeak-ng and flite (Debian packages, offline).

Used to make spoken captions, questions and digits for the built-in datasets and to speak answers
back. Each call runs the engine as a subprocess and returns mono float32 audio at 16 kHz.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import soundfile as sf

from omnifuse.errors import InputError, MissingDependencyError
from omnifuse.io.resample import resample

SAMPLE_RATE = 16_000

ESPEAK_VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-029",
    "en-us+f3",
    "en-gb-x-rp+f4",
    "en-us-nyc",
)
FLITE_VOICES = ("slt", "rms", "awb", "kal")


@dataclass(frozen=True)
class Voice:
    """A TTS voice: the engine, its voice name, speaking rate (words/min), pitch (0-99) and
    pitch range (percent of the voice's own, 100 = unchanged).

    ``rate``, ``pitch`` and ``pitch_range`` apply to espeak-ng (the range through its SSML
    ``<prosody range>``); flite voices have their own fixed prosody, and ``rate`` is mapped to
    its duration stretch.
    """

    engine: str = "espeak-ng"
    name: str = "en-us"
    rate: int = 160
    pitch: int = 50
    pitch_range: int = 100

    @property
    def key(self) -> str:
        base = f"{self.engine}:{self.name}:{self.rate}:{self.pitch}"
        return base if self.pitch_range == 100 else f"{base}:{self.pitch_range}"

    @classmethod
    def from_key(cls, key: str) -> Voice:
        """The voice a :attr:`key` names (as a world manifest records each utterance's voice),
        so a line can be spoken again in the same voice."""
        parts = key.split(":")
        try:
            if len(parts) not in (4, 5):
                raise ValueError
            numbers = [int(p) for p in parts[2:]]
        except ValueError:
            raise InputError(
                f"{key!r} is not a voice key (engine:name:rate:pitch[:range])", modality="text"
            ) from None
        return cls(parts[0], parts[1], *numbers)


def default_voices() -> list[Voice]:
    """Every voice available on this machine: espeak-ng variants first, then flite's."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        voices += [Voice("espeak-ng", name) for name in ESPEAK_VOICES]
    if shutil.which("flite"):
        voices += [Voice("flite", name) for name in FLITE_VOICES]
    return voices


def synthesize(text: str, voice: Voice | None = None, *, timeout_s: float = 30.0) -> np.ndarray:
    """Speak ``text`` with ``voice``; returns mono float32 samples at :data:`SAMPLE_RATE`."""
    voice = voice or Voice()
    text = text.strip()
    if not text:
        raise InputError("nothing to speak: the text is empty", modality="text")
    exe = shutil.which(voice.engine)
    if exe is None:
        raise MissingDependencyError(f"TTS engine {voice.engine}", apt=voice.engine)
    with tempfile.TemporaryDirectory(prefix="omnifuse-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        if voice.engine == "espeak-ng":
            cmd = [exe, "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch)]
            if voice.pitch_range != 100:
                cmd.append("-m")
                text = f'<prosody range="{voice.pitch_range}%">{xml_escape(text)}</prosody>'
            cmd += ["-w", str(out), "--", text]
        elif voice.engine == "flite":
            stretch = max(0.5, min(2.0, 160.0 / max(voice.rate, 1)))
            cmd = [
                exe,
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "-t",
                text,
                "-o",
                str(out),
            ]
        else:
            raise InputError(f"unknown TTS engine {voice.engine!r}; use espeak-ng or flite")
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{voice.engine} failed: {proc.stderr.decode(errors='replace').strip()}"
            )
        wave, rate = sf.read(str(out), dtype="float32", always_2d=True)
    return resample(wave.mean(axis=1), rate, SAMPLE_RATE)


def write_wav(path: Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV, the format every tool reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
