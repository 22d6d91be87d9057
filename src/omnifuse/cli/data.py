"""``omnifuse data``: build the built-in datasets, check manifests, summarise datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omnifuse.cli.render import console, examples_table, issues_table, summary_table
from omnifuse.data import builders
from omnifuse.data.manifest import check_manifest
from omnifuse.data.summary import summarize_dataset

app = typer.Typer(help="Build, check and summarise datasets.", no_args_is_help=True)


@app.command("list")
def list_datasets() -> None:
    """List the built-in datasets."""
    for name in builders.available():
        console.print(f"{name:16s} {builders.datasets.describe(name)}")


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="Dataset name (see `omnifuse data list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    size: Annotated[
        int | None,
        typer.Option(
            help="Number of items (scenes, samples, images, rows); default: the dataset's own."
        ),
    ] = None,
) -> None:
    """Write a built-in dataset as files plus manifests, deterministic for a seed."""
    if size is not None and size < 1:
        raise typer.BadParameter("--size must be at least 1")
    builders.build(name, out, seed=seed, **({} if size is None else {"size": size}))
    console.print(summary_table(summarize_dataset(out)))
    console.print(f"[green]wrote[/] {name} to {out}", soft_wrap=True)


@app.command("check")
def check(
    manifest: Annotated[Path, typer.Argument(help="A .jsonl or .csv manifest.")],
    decode: Annotated[
        bool, typer.Option(help="Also decode every referenced file (slower, finds corrupt media).")
    ] = False,
) -> None:
    """Validate a manifest and print every bad line with its column and reason."""
    issues = check_manifest(manifest, decode=decode)
    if not issues:
        console.print(f"[green]ok[/] {manifest}: no problems", soft_wrap=True)
        return
    console.print(issues_table(issues))
    raise typer.Exit(code=1)


@app.command("summary")
def summary(folder: Annotated[Path, typer.Argument(help="A folder with dataset.json.")]) -> None:
    """Counts per split and modality, label variety and examples of a built dataset."""
    summaries = summarize_dataset(folder)
    console.print(summary_table(summaries))
    console.print(examples_table(summaries))
