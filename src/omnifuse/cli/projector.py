"""``omnifuse projector train|eval|answer``: soft-prompt projectors into a frozen LM from the
shell (``omnifuse caption`` uses the models they train)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from omnifuse.cli.launch import Nnodes, Nproc, RdzvEndpoint, relaunch
from omnifuse.cli.options import (
    OutputFolder,
    Overrides,
    parse_encoder_options,
    recipe_option,
    recipe_overrides,
)
from omnifuse.cli.render import console

app = typer.Typer(
    help="Soft-prompt projectors into a frozen LM: train, evaluate, answer.",
    no_args_is_help=True,
)

SCORES = ("count", "exact_match", "accuracy", "bleu4", "rouge_l", "cider")


@app.command("train")
def train(
    config: Annotated[str, recipe_option("world-caption")],
    overrides: Overrides = None,
    output: OutputFolder = None,
    data: Annotated[
        Path | None,
        typer.Option(help="A manifest of your own instead of the recipe's data."),
    ] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder", help="With --data: COLUMN=NAME (or COLUMN.key=value); repeatable."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="With --data: the text column to generate.")
    ] = None,
    nproc: Nproc = 1,
    nnodes: Nnodes = 1,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Train a projector as the run file says (on your own manifest with --data); prints the
    validation and test scores."""
    import json

    from omnifuse.projector import read_projector_config, train_projector
    from omnifuse.train import distributed

    settings = recipe_overrides(overrides, output)
    if data is not None:
        settings.append(f"data={json.dumps({'manifest': str(data)})}")
    if encoder:
        settings.append(f"encoders={json.dumps(parse_encoder_options(encoder))}")
    if target is not None:
        settings.append(f"target={json.dumps(target)}")
    if relaunch(nproc, nnodes, rdzv_endpoint):
        return
    folder = train_projector(read_projector_config(config, settings))
    if not distributed.is_main():
        return
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    for split in ("val", "test"):
        if split in metrics:
            console.print(scores_table(metrics[split], title=f"{split} scores"))
    train_info = metrics.get("train", {})
    console.print(
        f"[green]done[/] {train_info.get('epochs')} epoch(s), final train loss "
        f"{train_info.get('final_train_loss', float('nan')):.4f} in "
        f"{train_info.get('seconds', 0):.1f} s → {folder}",
        soft_wrap=True,
    )


@app.command("eval")
def evaluate(
    model: Annotated[Path, typer.Argument(help="A projector model folder.")],
    split: Annotated[str, typer.Option(help="Split of the training manifest to score.")] = "test",
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Generation limit.")] = None,
) -> None:
    """Score a projector model on a split of the manifest it was trained on."""
    from omnifuse.data.manifest import load_manifest
    from omnifuse.projector.data import ProjectorDataset, encode_features, prepare_manifest
    from omnifuse.projector.evaluate import generate_texts, score_texts
    from omnifuse.projector.train import load_projector_lm

    projector, config = load_projector_lm(model)
    manifest_path = prepare_manifest(config)
    manifest = load_manifest(manifest_path)
    data = ProjectorDataset(
        encode_features(config, manifest_path), manifest, config, projector.lm, split=split
    )
    if len(data) == 0:
        raise typer.BadParameter(f"no sample of split {split!r} in {manifest_path}")
    hyps = generate_texts(
        projector, data, max_tokens=max_tokens or config.max_tokens, progress=True
    )
    metrics = score_texts(config.task, hyps, data.texts)
    console.print(scores_table(metrics, title=f"{model.name} on {manifest_path.name} ({split})"))


@app.command("answer")
def answer(
    image: Annotated[Path, typer.Argument(help="The image the question is about.")],
    question: Annotated[
        str, typer.Argument(help="The question: an audio file (spoken) or text, as trained.")
    ],
    model: Annotated[Path, typer.Option("--model", "-m", help="A VQA projector folder.")],
) -> None:
    """Answer a question about an image with a generative VQA projector model."""
    from omnifuse.projector.captioning import load_answerer

    answerer = load_answerer(model)
    spoken = len(answerer.columns) > 1
    if spoken and not Path(question).is_file():
        raise typer.BadParameter(
            f"this model hears its questions; {question!r} is not an audio file",
            param_hint="QUESTION",
        )
    console.print(answerer.answer([str(image)], [question])[0])


def scores_table(metrics: Mapping[str, Any], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SCORES:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            table.add_row(key, str(value) if isinstance(value, int) else f"{value:.4f}")
    for group, value in (metrics.get("accuracy_by_qtype") or {}).items():
        table.add_row(f"accuracy ({group})", f"{value:.4f}")
    for example in metrics.get("examples", [])[:3]:
        table.add_row(f"e.g. {example['target']}", example["generated"])
    return table
