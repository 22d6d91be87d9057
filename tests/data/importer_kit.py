"""Small real media and the two commands every importer test runs: ``omnifuse data import`` and
``omnifuse data check --decode`` on what it wrote."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from omnifuse.cli import app

runner = CliRunner()
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (30, 60, 220)}


def image_bytes(colour: str, fmt: str = "PNG", size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), COLOURS[colour]).save(buffer, format=fmt)
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.25, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def run_import(*args: str) -> str:
    """``omnifuse data import ARGS``; returns its output (it must succeed)."""
    result = runner.invoke(app, ["data", "import", *args])
    assert result.exit_code == 0, result.output
    return result.output


def check_decodes(manifest: Path) -> None:
    """``omnifuse data check --decode`` passes on the manifest."""
    result = runner.invoke(app, ["data", "check", "--decode", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def rows(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def schema(manifest: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        manifest.with_name(manifest.stem + ".schema.json").read_text(encoding="utf-8")
    )
    return data


def colour_of(path: Path) -> tuple[int, int, int]:
    """The centre pixel of an image file (to check which image a row points to)."""
    with Image.open(path) as image:
        r, g, b = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    return r, g, b


def near(pixel: tuple[int, int, int], colour: str) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel, COLOURS[colour], strict=True))
