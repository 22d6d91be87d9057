"""``omnifuse transcribe``: speech in a file to text (faster-whisper or pocketsphinx)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.speech.asr import Transcript


def transcribe(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, MP3, a video's sound...).")],
    engine: Annotated[
        str, typer.Option(help="faster-whisper (default) or pocketsphinx.")
    ] = "faster-whisper",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print text, segments and duration as JSON.")
    ] = False,
    segments: Annotated[bool, typer.Option(help="Show the timed segments as a table.")] = False,
) -> None:
    """Transcribe speech in AUDIO."""
    from omnifuse.speech.asr import create_asr

    transcript = create_asr(engine).transcribe(audio)
    if as_json:
        sys.stdout.write(json.dumps(transcript.to_dict(), ensure_ascii=False) + "\n")
        return
    if segments:
        console.print(segments_table(transcript))
    sys.stdout.write(transcript.text + "\n")


def segments_table(transcript: Transcript) -> Table:
    table = Table(title=f"{transcript.duration_s:.2f} s of audio", title_justify="left")
    for column in ("start", "end", "text"):
        table.add_column(column, justify="left" if column == "text" else "right")
    for s in transcript.segments:
        table.add_row(f"{s.start:.2f}", f"{s.end:.2f}", escape(s.text))
    return table
