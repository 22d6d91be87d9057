"""``omnifuse sweep``: train every fusion strategy with one budget and compare them."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.eval.report import StrategyResult
    from omnifuse.sweep import SweepResult


def json_or_text(text: str) -> Any:
    """A JSON value when ``text`` is one (64, 0.5, true, [-10, 5]), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_names(text: str) -> list[str]:
    """``all`` or ``a,b,c`` → a list of names (``none`` or empty → [])."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [] if names == ["none"] else names


def parse_options(entries: Sequence[str], hint: str) -> dict[str, Any]:
    """``key=value`` entries (values read as JSON where they are JSON) → a dict."""
    options: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {entry!r}", param_hint=hint)
        options[key.strip()] = json_or_text(value)
    return options


def parse_encoder_options(entries: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``COLUMN=NAME`` or ``COLUMN.key=value`` entries → per-column encoder specs."""
    specs: dict[str, dict[str, Any]] = {}
    for entry in entries:
        target, sep, value = entry.partition("=")
        column, dot, key = target.partition(".")
        if not sep or not column:
            raise typer.BadParameter(f"expected COLUMN=NAME or COLUMN.key=value, got {entry!r}")
        specs.setdefault(column, {})[key if dot else "name"] = (
            value if not dot else json_or_text(value)
        )
    return specs


CONSOLE_DROPS = ("kind", "ms/batch", "peak MiB", "macro-F1")
"""Leaderboard columns left out of the terminal table, with the Shapley values (all of them are
in leaderboard.md and .csv)."""
CONSOLE_NAMES = {"accuracy": "acc", "ms/sample": "ms", "train s": "train"}


def leaderboard_table(results: Sequence[StrategyResult], title: str) -> Table:
    from omnifuse.eval.report import leaderboard_rows

    headers, rows = leaderboard_rows(results)
    keep = [i for i, h in enumerate(headers) if h not in CONSOLE_DROPS and not h.startswith("φ ")]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for i in keep:
        name = CONSOLE_NAMES.get(headers[i], headers[i]).replace(" only", "\nonly")
        if name == "strategy":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def print_summary(result: SweepResult) -> None:
    summary = result.summary
    if "margin_points" in summary:
        fused, single = summary["best_fusion"], summary["best_single"]
        console.print(
            f"best fusion [bold]{fused['name']}[/] {fused['accuracy']:.3f} vs best single "
            f"modality [bold]{single['name']}[/] {single['accuracy']:.3f}: "
            f"{summary['margin_points']:+.1f} points"
        )
    for study in result.studies:
        for modality in study.drop_without:
            console.print(
                f"{study.fusion} with {modality} missing: accuracy falls "
                f"{100 * study.drop_without[modality]:.1f} points without modality dropout, "
                f"{100 * study.drop_with[modality]:.1f} with dropout {study.dropout:g}"
            )
    timings = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
    console.print(f"timings (s): {timings}")
    console.print("wrote " + ", ".join(str(p) for p in result.paths.values()))


def sweep(
    data: Annotated[str, typer.Option(help="Built-in data: av-digits or world-vqa.")] = (
        "av-digits"
    ),
    fusions: Annotated[str, typer.Option(help="'all' or comma-separated fusion names.")] = "all",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports.")] = Path(
        "sweep-out"
    ),
    size: Annotated[
        int | None,
        typer.Option(min=1, help="Dataset size (av-digits: 2000 samples, world-vqa: 800 scenes)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, the encoders and training.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs per strategy.")] = 15,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    dim: Annotated[int, typer.Option(min=1, help="Fused feature size.")] = 128,
    max_tokens: Annotated[
        int, typer.Option(help="Token cap per modality for token-level fusions (0: none).")
    ] = 16,
    modality_dropout: Annotated[
        float, typer.Option(help="Modality dropout for every strategy.")
    ] = 0.0,
    singles: Annotated[
        str, typer.Option(help="Fusions for single-modality baselines ('none' for none).")
    ] = "concat,transformer",
    dropout_study: Annotated[
        str,
        typer.Option(help="Fusions to retrain with modality dropout, comma-separated, or 'none'."),
    ] = "concat,low-rank-tensor,cross-attention",
    study_dropout: Annotated[
        float, typer.Option(help="Modality dropout of the dropout study.")
    ] = 0.5,
    noise: Annotated[bool, typer.Option(help="Noise curves on re-encoded test inputs.")] = False,
    noise_samples: Annotated[int, typer.Option(min=1, help="Test samples for noise.")] = 200,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Training processes (one torch thread each).")
    ] = min(2, os.cpu_count() or 1),
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Feature cache folder (default: in --out).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Dataset folder (default: in --out).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Dataset builder option key=value; repeatable."),
    ] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder", help="COLUMN=NAME or COLUMN.key=value to change an encoder; repeatable."
        ),
    ] = None,
) -> None:
    """Train every strategy with the same budget and seed; write a leaderboard and plots."""
    from omnifuse.sweep import SweepConfig, run_sweep

    config = SweepConfig(
        data=data,
        fusions=parse_names(fusions) or ["all"],
        out=out,
        size=size,
        seed=seed,
        data_dir=data_dir,
        cache_dir=cache,
        builder_options=parse_options(option or [], "--option"),
        encoders=parse_encoder_options(encoder or []),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        dim=dim,
        max_tokens=max_tokens or None,
        modality_dropout=modality_dropout,
        singles=parse_names(singles),
        dropout_study=parse_names(dropout_study),
        study_dropout=study_dropout,
        noise=noise,
        noise_samples=noise_samples,
        plots=plots,
        workers=workers,
    )
    result = run_sweep(config)
    console.print(leaderboard_table(result.results, f"{data} sweep (test split)"))
    print_summary(result)
