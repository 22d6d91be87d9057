"""``omnifuse caption``: caption images or video clips with a trained projector model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from omnifuse.cli.render import console


def caption(
    inputs: Annotated[list[Path], typer.Argument(help="Image files (or clips for a video model).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A captioning model folder.")],
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Longest caption, in tokens.")
    ] = None,
) -> None:
    """Caption images or video clips with a trained projector model."""
    from omnifuse.projector.captioning import load_captioner

    captioner = load_captioner(model)
    if max_tokens is not None:
        captioner.config.max_tokens = max_tokens
    captions = captioner.caption([str(p) for p in inputs])
    table = Table(title=f"captions ({model.name})", title_justify="left")
    table.add_column("input")
    table.add_column("caption")
    for path, text in zip(inputs, captions, strict=True):
        table.add_row(str(path), text)
    console.print(table)
