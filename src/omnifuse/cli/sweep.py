"""``omnifuse sweep``: train every fusion strategy with one budget and compare them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from click.core import ParameterSource
from rich import box
from rich.table import Table

from omnifuse.cli.options import AddressOpt, EngineOpt, parse_encoder_options, parse_options
from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.eval.report import StrategyResult
    from omnifuse.sweep import SweepResult


def parse_names(text: str) -> list[str]:
    """``all`` or ``a,b,c`` → a list of names (``none`` or empty → [])."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [] if names == ["none"] else names


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
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="A sweep recipe: a packaged name (av-digits-sweep) or a path."
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option(
            help="Built-in data (av-digits, world-vqa, world-sensors, ...), or a manifest "
            "(.jsonl/.csv) or dataset folder of your own."
        ),
    ] = "av-digits",
    target: Annotated[
        str | None,
        typer.Option(help="The label column (default: the dataset's, or the schema's first)."),
    ] = None,
    fusions: Annotated[str, typer.Option(help="'all' or comma-separated fusion names.")] = "all",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports.")] = Path(
        "sweep-out"
    ),
    size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Dataset size (av-digits: 2000 samples, world-vqa: 800 scenes, world-sensors: "
            "1000 clips).",
        ),
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
    group_by: Annotated[
        str | None,
        typer.Option(
            help="Manifest column whose values each get a test-accuracy column (e.g. condition)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Training processes, or Ray actors (one torch thread each)."),
    ] = min(2, os.cpu_count() or 1),
    engine: EngineOpt = "local",
    address: AddressOpt = None,
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
            "--encoder",
            help="COLUMN=NAME or COLUMN.key=value: the columns to fuse and their encoders; "
            "repeatable.",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting: key=value (YAML value); repeatable."),
    ] = None,
) -> None:
    """Train every strategy with the same budget and seed; write a leaderboard and plots.

    Without --config the options set everything; with it, the recipe does, and only the options
    given on the command line (then --set) change it."""
    from omnifuse.engines import create_engine
    from omnifuse.sweep import read_sweep_config, run_sweep

    settings = {
        "data": data,
        "target": target,
        "fusions": parse_names(fusions) or ["all"],
        "out": out,
        "size": size,
        "seed": seed,
        "data_dir": data_dir,
        "cache_dir": cache,
        "builder_options": parse_options(option or [], "--option"),
        "encoders": parse_encoder_options(encoder or []),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "dim": dim,
        "max_tokens": max_tokens or None,
        "modality_dropout": modality_dropout,
        "singles": parse_names(singles),
        "dropout_study": parse_names(dropout_study),
        "study_dropout": study_dropout,
        "noise": noise,
        "noise_samples": noise_samples,
        "plots": plots,
        "group_by": group_by,
        "workers": workers,
    }
    if config is not None:
        given = {
            p for p in OPTION_FIELDS if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE
        }
        settings = {OPTION_FIELDS[p]: settings[OPTION_FIELDS[p]] for p in given}
    parsed = read_sweep_config(config, overrides or [], settings)
    runner = None
    if engine != "local" or address is not None:
        runner = create_engine(engine, address=address, workers=parsed.workers)
    try:
        result = run_sweep(parsed, engine=runner)
    finally:
        if runner is not None:
            runner.close()
    console.print(leaderboard_table(result.results, f"{parsed.data} sweep (test split)"))
    print_summary(result)


OPTION_FIELDS = {
    "data": "data",
    "target": "target",
    "fusions": "fusions",
    "out": "out",
    "size": "size",
    "seed": "seed",
    "data_dir": "data_dir",
    "cache": "cache_dir",
    "option": "builder_options",
    "encoder": "encoders",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "dim": "dim",
    "max_tokens": "max_tokens",
    "modality_dropout": "modality_dropout",
    "singles": "singles",
    "dropout_study": "dropout_study",
    "study_dropout": "study_dropout",
    "noise": "noise",
    "noise_samples": "noise_samples",
    "plots": "plots",
    "group_by": "group_by",
    "workers": "workers",
}
"""Command-line parameter → SweepConfig field."""
