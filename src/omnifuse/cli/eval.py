"""``omnifuse eval``: score a fusion model on a manifest, from the shell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.render import console
from omnifuse.cli.train import metrics_table


def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by omnifuse train.")],
    manifest: Annotated[Path, typer.Argument(help="A .jsonl or .csv manifest.")],
    split: Annotated[
        str | None, typer.Option(help="Split to score; 'all' for every sample.")
    ] = "test",
    cache: Annotated[
        Path | None,
        typer.Option(help="Feature cache of the manifest (else inputs are encoded now)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch.")] = 64,
) -> None:
    """Score a model on a manifest: metrics table and, for classes, the confusion matrix."""
    from omnifuse.data.cache import CachedFeatureDataset
    from omnifuse.data.manifest import load_manifest
    from omnifuse.models import RawDataset, load_model
    from omnifuse.models.inference import evaluate as evaluate_model

    model = load_model(model_dir)
    loaded = load_manifest(manifest)
    chosen = None if split in (None, "all") else split
    data: Any
    if cache is not None:
        data = CachedFeatureDataset(cache, loaded, list(model.modalities), split=chosen)
    else:
        data = RawDataset.from_manifest(loaded, model, split=chosen)
    if len(data) == 0:
        raise typer.BadParameter(
            f"no sample of split {split!r} in {manifest}", param_hint="--split"
        )
    metrics = evaluate_model(model, data, batch_size=batch_size)
    console.print(metrics_table(metrics, title=f"{model_dir.name} on {manifest.name} ({split})"))
    for key, value in metrics.items():
        if key.startswith("accuracy_by_") and isinstance(value, dict):
            console.print(grouped_table(key, value))
    if "confusion" in metrics:
        console.print(confusion_table(metrics["confusion"], metrics["classes"]))


def grouped_table(key: str, values: Mapping[str, float]) -> Table:
    table = Table(title=key.replace("_", " "), title_justify="left")
    table.add_column(key.removeprefix("accuracy_by_"))
    table.add_column("accuracy", justify="right")
    for group, value in values.items():
        table.add_row(group, f"{value:.4f}")
    return table


def confusion_table(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> Table:
    table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("")
    for name in classes:
        table.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(classes, confusion, strict=True)):
        table.add_row(name, *(f"[bold]{v}[/]" if i == j else str(v) for j, v in enumerate(row)))
    return table
