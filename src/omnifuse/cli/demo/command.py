"""The options of ``omnifuse demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for everything it builds.")
    ] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Random seed for the generated data.")] = 0,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="End by serving the API and web page.")
    ] = True,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the demo server.")] = 8000,
    serve_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="Stop the server after this long (default: at Ctrl-C)."),
    ] = None,
) -> None:
    """The main job on the built-in data: datasets, a fusion sweep, alignment and search, speech
    and the LLM, then the HTTP API and web page on loopback."""
    from omnifuse.cli.demo import run_demo

    run_demo(out, seed=seed, serve=serve, port=port, serve_seconds=serve_seconds)
