"""``omnifuse data``: build the built-in datasets, import other formats, check manifests,
summarise datasets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from omnifuse.cli.options import parse_options
from omnifuse.cli.render import console, examples_table, issues_table, summary_table
from omnifuse.data import builders
from omnifuse.data.manifest import check_manifest
from omnifuse.data.summary import summarize_dataset

if TYPE_CHECKING:
    from omnifuse.data.importers import ImportIssue

app = typer.Typer(help="Build, import, check and summarise datasets.", no_args_is_help=True)


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
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Builder option key=value (e.g. video_clips=0); repeatable."),
    ] = None,
) -> None:
    """Write a built-in dataset as files plus manifests, deterministic for a seed."""
    if size is not None and size < 1:
        raise typer.BadParameter("--size must be at least 1")
    options = parse_options(option or [], "--option")
    builders.build(name, out, seed=seed, **options, **({} if size is None else {"size": size}))
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


@app.command("import")
def import_data(
    format: Annotated[
        str,
        typer.Argument(help="coco-captions, vqa-v2, hf-datasets, webdataset or parquet."),
    ],
    path: Annotated[
        Path,
        typer.Argument(help="The source: a JSON file, a .tar or .parquet, or a folder of them."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the manifest and media.")],
    split: Annotated[
        str | None,
        typer.Option(help="Split of every record (train, val, test); the source's own otherwise."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            help="FIELD=ROLE for a field not to be guessed: image, audio, video, text, label, "
            "id, split, extra or skip (repeatable)."
        ),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="COCO / VQA: the folder of the image files.")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="VQA v2: the annotations JSON (answers).")
    ] = None,
    image_name: Annotated[
        str | None,
        typer.Option(
            help="VQA v2: image file pattern, default COCO_{subtype}_{image_id:012d}.jpg."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many source records.")] = None,
    decode: Annotated[
        bool,
        typer.Option(
            help="Decode every media item and skip records whose media do not decode "
            "(--no-decode: check their first bytes only, faster)."
        ),
    ] = True,
    name: Annotated[str, typer.Option(help="Manifest file name, without .jsonl.")] = "manifest",
) -> None:
    """Write a manifest (JSONL + schema) from a dataset in another format, streaming; media
    inside the source are written to files under --out, image folders are referenced. Bad
    records are skipped and listed by position."""
    from omnifuse.data.importers import ImportOptions, formats, import_source

    if format not in formats():
        raise typer.BadParameter(f"unknown format {format!r}; use one of {', '.join(formats())}")
    roles = {}
    for entry in column or []:
        field, sep, role = entry.partition("=")
        if not sep or not field or not role:
            raise typer.BadParameter(f"--column {entry!r}: expected FIELD=ROLE")
        roles[field] = role
    options = ImportOptions(
        split=split,
        columns=roles,
        images=images,
        annotations=annotations,
        image_name=image_name,
        limit=limit,
        decode=decode,
        name=name,
    )
    report = import_source(format, path, out, options)
    for note in report.notes:
        console.print(f"[yellow]note[/] {note}", soft_wrap=True)
    if report.issues:
        console.print(import_issues_table(report.issues))
    console.print(
        f"[green]wrote[/] {report.rows} row(s), {report.media_files} media file(s) to "
        f"{report.manifest}; {len(report.issues)} record(s) skipped",
        soft_wrap=True,
    )
    if report.rows == 0:
        raise typer.Exit(code=1)


def import_issues_table(issues: Sequence[ImportIssue], limit: int = 200) -> Table:
    table = Table(title=f"{len(issues)} record(s) skipped", title_justify="left")
    for name in ("record", "key", "column", "reason"):
        table.add_column(name, justify="right" if name == "record" else "left")
    for issue in issues[:limit]:
        table.add_row(str(issue.position), issue.key or "—", issue.column or "—", issue.reason)
    if len(issues) > limit:
        table.add_row("…", "", "", f"{len(issues) - limit} more")
    return table
