"""``omnifuse encode``: write a manifest's features to a resumable feature cache."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.render import console, console_err

if TYPE_CHECKING:
    from omnifuse.data.cache import EncodeReport, SkippedItem

SKIPPED_SHOWN = 50


def parse_encoders(text: str) -> dict[str, str]:
    """``col=name,col2=name2`` → {col: name}; a column given twice is an error."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        column, sep, name = part.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise typer.BadParameter(
                f"expected COLUMN=ENCODER, got {part!r}", param_hint="--encoders"
            )
        if column.strip() in mapping:
            raise typer.BadParameter(f"column {column!r} given twice", param_hint="--encoders")
        mapping[column.strip()] = name.strip()
    if not mapping:
        raise typer.BadParameter("map at least one column to an encoder", param_hint="--encoders")
    return mapping


def parse_encoder_config(
    entries: Sequence[str], encoders: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """``NAME.key=value`` entries → per-column configs. NAME is a column (that column only) or an
    encoder name (every column using it)."""
    config: dict[str, dict[str, Any]] = {column: {} for column in encoders}
    for entry in entries:
        target, sep, value = entry.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise typer.BadParameter(
                f"expected NAME.key=value, got {entry!r}", param_hint="--encoder-config"
            )
        columns = [name] if name in encoders else [c for c, e in encoders.items() if e == name]
        if not columns:
            raise typer.BadParameter(
                f"{name!r} is neither a column nor an encoder of --encoders",
                param_hint="--encoder-config",
            )
        for column in columns:
            config[column][key] = _scalar(value)
    return config


def _scalar(text: str) -> Any:
    """A JSON value when ``text`` is one (64, 0.5, 1e-3, true, null, [1, 2]), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def skipped_table(skipped: Sequence[SkippedItem], limit: int = SKIPPED_SHOWN) -> Table:
    table = Table(title=f"{len(skipped)} item(s) skipped", title_justify="left")
    for column in ("sample", "column", "error", "reason"):
        table.add_column(column)
    for item in skipped[:limit]:
        table.add_row(item.sample, item.column or "—", item.error, item.reason)
    if len(skipped) > limit:
        table.add_row("…", "", "", f"{len(skipped) - limit} more in errors.jsonl")
    return table


def summary_table(report: EncodeReport) -> Table:
    table = Table(title="Feature cache", title_justify="left")
    for column in ("column", "encoder", "items", "encoded", "reused", "skipped"):
        table.add_column(column, justify="left" if column in ("column", "encoder") else "right")
    for name, c in report.columns.items():
        table.add_row(name, c.encoder, *map(str, (c.items, c.encoded, c.reused, c.skipped)))
    return table


def encode(
    manifest: Annotated[Path, typer.Argument(help="A .jsonl or .csv manifest.")],
    encoders: Annotated[
        str,
        typer.Option(
            "--encoders",
            "-e",
            help="COLUMN=ENCODER pairs, comma-separated, e.g. text=minilm,image=effnet-lite0.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Cache folder (created or resumed).")],
    encoder_config: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder-config",
            "-c",
            help="NAME.key=value passed to an encoder (NAME: column or encoder); repeatable.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per encoder batch.")] = 32,
    shard_size: Annotated[int, typer.Option(min=1, help="Items per shard file.")] = 256,
    tokens: Annotated[
        bool, typer.Option(help="Store per-token features too (else pooled vectors only).")
    ] = True,
    tokens_dtype: Annotated[str, typer.Option(help="Stored token dtype: fp16, bf16 or fp32.")] = (
        "fp16"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Compute dtype: fp32 or bf16.")] = "fp32",
    seed: Annotated[
        int, typer.Option(help="Seed for encoders that start from random weights.")
    ] = 0,
) -> None:
    """Encode manifest columns into safetensors shards keyed by content; rerun to resume.

    Bad items are skipped, listed, and written to OUT/errors.jsonl.
    """
    from omnifuse.data.cache import encode_manifest  # torch loads only when encoding

    mapping = parse_encoders(encoders)
    config = parse_encoder_config(encoder_config or [], mapping)
    try:
        report = encode_manifest(
            manifest,
            mapping,
            out,
            encoder_config=config,
            batch_size=batch_size,
            shard_size=shard_size,
            store_tokens=tokens,
            tokens_dtype=tokens_dtype,
            device=device,
            dtype=dtype,
            seed=seed,
        )
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]: finished shards are kept; rerun to resume")
        raise typer.Exit(code=130) from None
    if report.skipped:
        console.print(skipped_table(report.skipped))
    console.print(summary_table(report))
    console.print(
        f"[green]done[/] {report.encoded} encoded, {report.reused} reused from cache, "
        f"{len(report.skipped)} skipped in {report.seconds:.1f} s "
        f"({report.items_per_second:.1f} items/s) → {out}",
        soft_wrap=True,
    )
