"""``omnifuse encode``: write a manifest's features to a resumable feature cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.options import AddressOpt, EngineOpt, parse_encoder_config, parse_encoders
from omnifuse.cli.render import console, console_err

if TYPE_CHECKING:
    from omnifuse.data.cache import EncodeReport, SkippedItem

SKIPPED_SHOWN = 50


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
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Encoding workers (processes, or Ray actors), each building the encoder."
        ),
    ] = 1,
) -> None:
    """Encode manifest columns into safetensors shards keyed by content; rerun to resume.

    Bad items are skipped, listed, and written to OUT/errors.jsonl. With --engine ray the
    batches run on a Ray cluster's actors and this process writes the same shards.
    """
    from omnifuse.data.cache import encode_manifest  # torch loads only when encoding
    from omnifuse.engines import create_engine

    mapping = parse_encoders(encoders)
    config = fitted_config(manifest, mapping, parse_encoder_config(encoder_config or [], mapping))
    runner = create_engine(engine, address=address, workers=workers)
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
            engine=runner,
        )
    except KeyboardInterrupt:
        console_err.print("[yellow]interrupted[/]: finished shards are kept; rerun to resume")
        raise typer.Exit(code=130) from None
    finally:
        runner.close()
    if report.skipped:
        console.print(skipped_table(report.skipped))
    console.print(summary_table(report))
    console.print(
        f"[green]done[/] {report.encoded} encoded, {report.reused} reused from cache, "
        f"{len(report.skipped)} skipped in {report.seconds:.1f} s "
        f"({report.items_per_second:.1f} items/s) → {out}",
        soft_wrap=True,
    )


def fitted_config(
    manifest: Path, mapping: dict[str, str], config: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each column's encoder options plus what its encoder fits on the manifest's training split
    (a tabular column's fields, series statistics), as training and the sweep do."""
    from omnifuse.data.manifest import load_manifest
    from omnifuse.data.prepare import fit_encoders

    loaded = load_manifest(manifest)
    split = "train" if loaded.schema.split is not None else None
    specs = {c: {"name": name, **config.get(c, {})} for c, name in mapping.items()}
    fitted = fit_encoders(loaded, specs, split=split)
    return {c: {k: v for k, v in entry.items() if k != "name"} for c, entry in fitted.items()}
