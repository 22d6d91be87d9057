"""``omnifuse train``, ``omnifuse eval`` and ``omnifuse predict``: fusion models from the shell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.models import FusionModel, ModelOutput

SCALARS = (
    "accuracy",
    "macro_f1",
    "precision",
    "recall",
    "ece",
    "micro_f1",
    "subset_accuracy",
    "auc",
    "match_f1",
    "mae",
    "rmse",
    "r2",
    "loss",
    "count",
)


def train(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="A run file (YAML), e.g. configs/av-digits-concat.yaml."
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting: key.path=value (YAML value); repeatable."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Model folder (overrides 'output').")
    ] = None,
) -> None:
    """Train a fusion model as the run file says; writes the model folder and prints its metrics."""
    from omnifuse.train.recipe import read_run_config, run

    settings = list(overrides or [])
    if output is not None:
        settings.append(f"output={output}")
    outcome = run(read_run_config(config, settings))
    for split in ("val", "test"):
        if split in outcome.metrics:
            console.print(metrics_table(outcome.metrics[split], title=f"{split} metrics"))
    result = outcome.result
    console.print(
        f"[green]done[/] {len(result.history)} epoch(s), best {result.metric} "
        f"{result.best_metric:.4f} at epoch {result.best_epoch}"
        f"{' (stopped early)' if result.stopped_early else ''} in {result.seconds:.1f} s "
        f"→ {outcome.folder}",
        soft_wrap=True,
    )


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


def predict(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by omnifuse train.")],
    text: Annotated[str | None, typer.Option(help="Text for the model's text column.")] = None,
    image: Annotated[Path | None, typer.Option(help="Image file for the image column.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Audio file for the audio column.")] = None,
    video: Annotated[Path | None, typer.Option(help="Video file for the video column.")] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="COLUMN=VALUE for a column by name; repeatable."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many classes to show.")] = 5,
) -> None:
    """Predict from any subset of the model's inputs; missing ones count as absent modalities."""
    from omnifuse.models import load_model

    model = load_model(model_dir)
    given = {"text": text, "image": image, "audio": audio, "video": video}
    sample = sample_from_options(
        model, {k: v for k, v in given.items() if v is not None}, inputs or []
    )
    output = model.predict_raw([sample])
    console.print(prediction_table(model, output, top))
    weights = modality_weights(model, output)
    if weights:
        console.print(weights_table(weights))


def sample_from_options(
    model: FusionModel, by_kind: Mapping[str, Any], inputs: Sequence[str]
) -> dict[str, Any]:
    """Map ``--text/--image/...`` to the model's one column of that kind and ``--input COL=V``
    to the named column."""
    from omnifuse.models.encoders import encoder_kind

    kinds = {
        c: encoder_kind(model.config.encoders[c])
        for c in model.modalities
        if c in model.config.encoders
    }
    sample: dict[str, Any] = {}
    for kind, value in by_kind.items():
        columns = [c for c, k in kinds.items() if k == kind]
        if not columns:
            raise typer.BadParameter(
                f"the model has no {kind} column (columns: {kinds})", param_hint=f"--{kind}"
            )
        if len(columns) > 1:
            raise typer.BadParameter(
                f"the model has several {kind} columns {columns}; use --input COLUMN=VALUE",
                param_hint=f"--{kind}",
            )
        sample[columns[0]] = str(value) if isinstance(value, Path) else value
    for item in inputs:
        column, sep, value = item.partition("=")
        if not sep or column not in model.modalities:
            raise typer.BadParameter(
                f"expected COLUMN=VALUE with COLUMN one of {list(model.modalities)}, got {item!r}",
                param_hint="--input",
            )
        sample[column] = value
    if not sample:
        raise typer.BadParameter(
            "give at least one input (--text, --image, --audio, --video, --input)"
        )
    return sample


def modality_weights(model: FusionModel, output: ModelOutput) -> dict[str, float]:
    weights = output.fusion.weights
    if weights is None:
        return {}
    return {m: float(w) for m, w in zip(model.modalities, weights[0].tolist(), strict=True)}


def metrics_table(metrics: Mapping[str, Any], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SCALARS:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            table.add_row(key, str(value) if isinstance(value, int) else f"{value:.4f}")
    return table


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


def prediction_table(model: FusionModel, output: ModelOutput, top: int) -> Table:
    table = Table(title=f"prediction ({model.config.task})", title_justify="left")
    table.add_column("label")
    table.add_column(
        "probability" if model.config.task != "regression" else "value", justify="right"
    )
    for label, score in model.task.top(output.logits, top)[0]:
        table.add_row(label, f"{score:.4f}")
    return table


def weights_table(weights: Mapping[str, float]) -> Table:
    table = Table(title="modality weights", title_justify="left")
    table.add_column("modality")
    table.add_column("weight", justify="right")
    for modality, weight in weights.items():
        table.add_row(modality, f"{weight:.3f}")
    return table
