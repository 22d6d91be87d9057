"""``omnifuse speak``: text to a WAV file with a system TTS engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omnifuse.cli.render import console_err


def speak(
    text: Annotated[str, typer.Argument(help="What to say.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="WAV file to write (16 kHz).")],
    voice: Annotated[
        str, typer.Option(help="Voice name (espeak-ng: en-us, en-gb...; flite: slt, rms...).")
    ] = "en-us",
    engine: Annotated[str, typer.Option(help="espeak-ng or flite.")] = "espeak-ng",
    rate: Annotated[int, typer.Option(min=80, max=450, help="Words per minute.")] = 160,
) -> None:
    """Speak TEXT into a WAV file with a system TTS engine."""
    from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize, write_wav

    wave = synthesize(text, Voice(engine, voice, rate=rate))
    write_wav(out, wave)
    console_err.print(f"[green]wrote[/] {out} ({len(wave) / SAMPLE_RATE:.2f} s)")
