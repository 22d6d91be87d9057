"""``omnifuse predict``: a fusion model on any subset of its inputs, from the shell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.models import FusionModel, ModelOutput


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
