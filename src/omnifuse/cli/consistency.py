"""``omnifuse consistency``: do a text, an image and a recording describe the same thing?

::

    omnifuse consistency --align runs/align-world --text "a red circle above a blue square" \\
        --image scene.png --audio caption.wav [--json]
    omnifuse consistency calibrate --align runs/align-world      # writes consistency.json
    omnifuse consistency train --config world-consistency     # → runs/align-world-consistency
    omnifuse consistency match --align runs/align-world          # adds a matcher, recalibrates

The check prints every pair's cosine similarity, calibrated probability and verdict, and the
overall verdict (consistent only when every pair is; the overall probability is the least of
the pairs'). It exits 0 when the inputs are consistent and 1 when they are not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from omnifuse.cli.options import Overrides, recipe_option
from omnifuse.cli.render import console

app = typer.Typer(
    help="Check that inputs of different modalities describe the same thing (calibrated).",
    invoke_without_command=True,
    no_args_is_help=False,
)

AlignDir = Annotated[
    Path,
    typer.Option("--align", help="An aligned model folder (omnifuse align) with text and image."),
]


@app.callback()
def consistency(
    ctx: typer.Context,
    align: Annotated[
        Path | None, typer.Option("--align", help="The aligned model folder, calibrated.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="A description.")] = None,
    image: Annotated[Path | None, typer.Option(help="An image file.")] = None,
    audio: Annotated[Path | None, typer.Option(help="A recording (a spoken description).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Probability per pair of inputs that they describe the same thing, and the verdict."""
    if ctx.invoked_subcommand is not None:
        return
    if align is None:
        raise typer.BadParameter("give the aligned model with --align", param_hint="--align")
    from omnifuse.align.consistency import ConsistencyChecker

    inputs = {"text": text, "image": image, "audio": audio}
    given = {m: (str(v) if isinstance(v, Path) else v) for m, v in inputs.items() if v is not None}
    checker = ConsistencyChecker.load(align)
    result = checker.check(given)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        table = Table(title="consistency", title_justify="left", box=box.SIMPLE_HEAD)
        columns = ("pair", "scorer", "score", "probability", "threshold", "verdict")
        for column in columns:
            left = column in ("pair", "scorer", "verdict")
            table.add_column(column, justify="left" if left else "right")
        for pair in result.pairs:
            row = pair.to_dict()
            table.add_row(
                f"{pair.a}–{pair.b}",
                pair.scorer,
                f"{row['score']:.3f}",
                f"{pair.probability:.3f}",
                f"{pair.threshold:.3f}",
                row["verdict"],
            )
        console.print(table)
        for pair in result.pairs:
            if pair.heard is not None:
                console.print(f"heard in the recording: {pair.heard!r}")
        verdict = result.to_dict()["verdict"]
        console.print(f"overall: [bold]{verdict}[/] (probability {result.probability:.3f})")
    if not result.consistent:
        raise typer.Exit(1)


@app.command("calibrate")
def calibrate(
    align: AlignDir,
    manifest: Annotated[
        Path | None,
        typer.Option(help="A world scenes manifest (default: the model's training manifest)."),
    ] = None,
    split: Annotated[str, typer.Option(help="The split to fit on.")] = "val",
    limit: Annotated[
        int | None, typer.Option(min=2, help="Only the first N scenes of the split.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Picks the edits and the other scenes.")] = 0,
) -> None:
    """Fit each modality pair's probability and threshold on world pairs with one-attribute
    edits; writes consistency.json into the model folder."""
    from omnifuse.align.consistency import calibrate as fit

    result = fit(align, manifest=manifest, split=split, limit=limit, seed=seed)
    table = Table(title=f"calibration on {split}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("pair", "pairs", "AUROC edits", "AUROC other", "ECE", "threshold p"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    named = [(f"{p.a}–{p.b}", p) for p in result.pairs.values()]
    for name, pair in named + ([("premise", result.premise)] if result.premise else []):
        val = pair.val
        table.add_row(
            name,
            str(val["pairs"]),
            f"{val['auroc_swaps']:.3f}",
            "–" if val["auroc_other"] is None else f"{val['auroc_other']:.3f}",
            f"{val['ece']:.3f}",
            f"{pair.threshold:.3f}",
        )
    console.print(table)
    for name, reason in result.source.get("skipped", {}).items():
        console.print(f"[yellow]left out[/] {name}: {reason}")
    console.print(f"[green]wrote[/] {align / 'consistency.json'}")


@app.command("train")
def train(
    config: Annotated[str | None, recipe_option("world-consistency")] = None,
    align: Annotated[
        Path | None,
        typer.Option("--align", help="Instead of --config: go on from this aligned model."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model folder (overrides 'output').")
    ] = None,
    overrides: Overrides = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs per stage (default: the recipe's).")
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Learning rate (the recipe's).")] = None,
    patience: Annotated[
        int | None, typer.Option(min=1, help="Epochs without progress (the recipe's).")
    ] = None,
    variants: Annotated[int, typer.Option(min=1, help="Edits of each kind per scene.")] = 1,
    render: Annotated[
        bool, typer.Option("--render/--no-render", help="Draw the edited scenes as images too.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Picks the edits.")] = 0,
    matcher: Annotated[
        bool,
        typer.Option(
            "--matcher/--no-matcher",
            help="Also train the matcher that reads description and image together.",
        ),
    ] = True,
) -> None:
    """Train an aligned world model with each scene's edits (one colour, shape, count or
    relation changed) in its batch — from a recipe, or from an aligned model's weights and
    recipe — and a matcher, then calibrate it on the validation split."""
    from omnifuse.align.config import read_align_config
    from omnifuse.align.consistency.match_train import MatchTraining
    from omnifuse.align.consistency.train import (
        ConsistencyTraining,
        recipe_of,
        train_consistency,
    )

    if (config is None) == (align is None):
        raise typer.BadParameter(
            "give either --config RECIPE or --align DIR", param_hint="--config"
        )
    recipe = read_align_config(config, overrides or []) if config else recipe_of(align or "")
    if out is None and align is not None:
        raise typer.BadParameter("with --align, give the new folder with --out", param_hint="--out")
    settings = ConsistencyTraining(
        epochs=epochs,
        lr=lr,
        patience=patience,
        variants=variants,
        render=render,
        seed=seed,
        matcher=MatchTraining(seed=seed) if matcher else None,
    )
    _, metrics = train_consistency(recipe, out, settings, init=align)
    for stage in metrics["train"]["stages"]:
        console.print(
            f"{stage['name']}: {stage['epochs']} epochs, best {stage['best_epoch']} "
            f"(val AUROC against edits {stage['best_val_auroc']:.3f})"
        )
    if "matcher" in metrics:
        found = metrics["matcher"]
        console.print(
            f"matcher: {found['epochs']} epochs, best {found['best_epoch']} "
            f"(val AUROC against edits {found['best_val_auroc']:.3f})"
        )
    folder = out or recipe.output
    if "calibration" in metrics:
        console.print(f"[yellow]{metrics['calibration']}[/]")
    console.print(f"[green]done[/] in {metrics['train']['seconds']:.0f} s → {folder}")


@app.command("match")
def match(
    align: AlignDir,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs.")] = 20,
    per_scene: Annotated[
        int, typer.Option(min=2, help="Examples of each scene in a batch (drawn afresh).")
    ] = 12,
    variants: Annotated[int, typer.Option(min=1, help="Edits of each kind per scene.")] = 1,
    seed: Annotated[int, typer.Option(help="Picks the edits and the examples.")] = 0,
    pixel_view: Annotated[
        bool,
        typer.Option("--pixel-view", help="Add each grid cell's raw pixels to its image token."),
    ] = False,
    patch: Annotated[int, typer.Option(min=1, help="Pixels a side of a cell's patch.")] = 4,
    grid: Annotated[
        str,
        typer.Option(
            help="Image tokens: 'final' (the aligned model's) or 'fine' (its EfficientNet "
            "read on a 2× finer grid, mid-level and final features per cell)."
        ),
    ] = "final",
    scenes: Annotated[
        Path | None,
        typer.Option(
            help="Train on this world scenes.jsonl's train/val splits instead of the model's own "
            "(e.g. a larger world set; the calibration stays on the model's own val split)."
        ),
    ] = None,
) -> None:
    """Give an aligned world model a matcher — a small cross-encoder that reads a description
    and an image together, trained on the model's own training scenes (or --scenes) and their
    edits drawn — and calibrate the model again (consistency.json then reads the matcher)."""
    from omnifuse.align.consistency.match_train import MatchTraining
    from omnifuse.align.consistency.train import add_matcher

    settings = MatchTraining(
        epochs=epochs,
        per_scene=per_scene,
        seed=seed,
        pixel_view=pixel_view,
        patch=patch,
        grid=grid,
    )
    figures = add_matcher(align, settings, variants=variants, seed=seed, scenes=scenes)
    console.print(
        f"matcher: {figures['epochs']} epochs, best {figures['best_epoch']} "
        f"(val AUROC against edits {figures['best_val_auroc']:.3f}) in {figures['seconds']:.0f} s"
    )
    console.print(f"[green]wrote[/] {align / 'matcher.safetensors'} and consistency.json")
