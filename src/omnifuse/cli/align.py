"""``omnifuse align``: contrastive alignment, its retrieval evaluation and zero-shot labels.

::

    omnifuse align --config world-align --out runs/align-world
    omnifuse align --data world --size 400 --out runs/align-world     # built-in recipe
    omnifuse align eval runs/align-world                 # retrieval on its test split
    omnifuse align zero-shot runs/align-fashion --manifest data/classification.jsonl
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from omnifuse.cli.launch import Nnodes, Nproc, RdzvEndpoint, relaunch
from omnifuse.cli.options import Overrides, parse_encoder_options, recipe_option
from omnifuse.cli.render import console

if TYPE_CHECKING:
    from omnifuse.align import AlignConfig

app = typer.Typer(
    help="Align modalities in one embedding space (CLIP-style), evaluate retrieval, zero-shot.",
    invoke_without_command=True,
    no_args_is_help=False,
)

TABLE_METRICS = ("R@1", "R@5", "R@10", "mrr", "map")


@app.callback()
def align(
    ctx: typer.Context,
    config: Annotated[str | None, recipe_option("world-align")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Instead of --config: the built-in recipe of world or fashion-mnist, or a "
            "manifest (.jsonl/.csv) of your own with --encoder."
        ),
    ] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder",
            help="With a manifest: COLUMN=NAME; the first two columns are aligned, any further "
            "one is bound to the first. Repeatable.",
        ),
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(help="With a manifest: rows with equal values here are positives."),
    ] = None,
    size: Annotated[int, typer.Option(min=1, help="With --data: dataset size.")] = 400,
    seed: Annotated[int, typer.Option(help="With --data: data and training seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model folder (overrides 'output').")
    ] = None,
    overrides: Overrides = None,
    nproc: Nproc = 1,
    nnodes: Nnodes = 1,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Train projection heads into one space; writes the model folder, prints retrieval.
    With --nproc N, N data-parallel processes share each batch (torchrun)."""
    if ctx.invoked_subcommand is not None:
        return
    if relaunch(nproc, nnodes, rdzv_endpoint):
        return
    manifest = {"encoders": parse_encoder_options(encoder or []), "group_by": group_by}
    parsed = _config(config, data, size, seed, overrides or [], manifest)
    folder = out or (Path(parsed.output) if parsed.output else None)
    if folder is None:
        raise typer.BadParameter("give --out (the config has no 'output')", param_hint="--out")
    from omnifuse.align import train_alignment
    from omnifuse.train import distributed

    result = train_alignment(parsed, folder)
    if not distributed.is_main():
        return
    for split in ("val", "test"):
        if split in result.metrics:
            console.print(retrieval_table(result.metrics[split], title=f"{split} retrieval"))
    stages = ", ".join(
        f"{s['name']}: {s['epochs']} epochs (best {s['best_epoch']})"
        for s in result.metrics["train"]["stages"]
    )
    console.print(
        f"[green]done[/] {stages} in {result.seconds:.1f} s → {result.folder}", soft_wrap=True
    )


def _config(
    config: str | None,
    data: str | None,
    size: int,
    seed: int,
    overrides: Sequence[str],
    manifest: Mapping[str, Any],
) -> AlignConfig:
    from omnifuse.align.config import AlignConfig, read_align_config
    from omnifuse.align.presets import PRESETS, manifest_recipe, preset
    from omnifuse.config import apply_overrides

    if (config is None) == (data is None):
        raise typer.BadParameter("give either --config FILE or --data NAME", param_hint="--config")
    if config is not None:
        return read_align_config(config, overrides)
    if data in PRESETS:
        recipe = preset(str(data), size=size, seed=seed)
    else:
        recipe = manifest_recipe(Path(str(data)), seed=seed, **manifest)
    return AlignConfig.from_dict(apply_overrides(recipe, overrides))


@app.command("eval")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by omnifuse align.")],
    manifest: Annotated[
        Path | None,
        typer.Argument(help="A manifest with the model's columns (default: its training one)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score; 'all' for every row.")] = "test",
    group_by: Annotated[
        str | None,
        typer.Option(help="Rows with equal values are all relevant (default: as trained)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Inputs per encoder batch.")] = 32,
) -> None:
    """Retrieval in every direction on raw inputs (the encoders run now)."""
    from omnifuse.align import load_aligned
    from omnifuse.align.evaluate import embed_samples, retrieval_metrics
    from omnifuse.align.model import read_aligned_config, read_metrics
    from omnifuse.data.manifest import load_manifest

    model = load_aligned(model_dir)
    trained = read_aligned_config(model_dir).get("config", {}).get("data", {})
    path = manifest or Path(str(read_metrics(model_dir).get("data", {}).get("manifest", "")))
    if not path.is_file():
        raise typer.BadParameter(f"manifest {path} not found", param_hint="MANIFEST")
    loaded = load_manifest(path)
    rows = loaded.samples if split == "all" else loaded.split(split)
    columns = [spec.column for spec in model.specs.values()]
    rows = [r for r in rows if all(c in r for c in columns)]
    if len(rows) < 2:
        raise typer.BadParameter(
            f"fewer than 2 rows of split {split!r} in {path}", param_hint="--split"
        )
    key = group_by if group_by is not None else trained.get("group_by")
    groups = [str(r.get(key)) if key else f"row{i}" for i, r in enumerate(rows)]
    report = retrieval_metrics(embed_samples(model, rows, batch_size=batch_size), groups)
    console.print(retrieval_table(report, title=f"{model_dir.name} on {path.name} ({split})"))


@app.command("zero-shot")
def zero_shot(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by omnifuse align.")],
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Files to classify (or use --manifest).")
    ] = None,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated class names (default: the labels).")
    ] = None,
    templates: Annotated[
        list[str] | None,
        typer.Option("--template", help="Prompt with one {} for the class name; repeatable."),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Score a labelled manifest instead of files.")
    ] = None,
    label: Annotated[str, typer.Option(help="The manifest's label column.")] = "label",
    split: Annotated[str, typer.Option(help="With --manifest: split, or 'all'.")] = "test",
    modality: Annotated[str, typer.Option(help="What the inputs are.")] = "image",
) -> None:
    """Classify inputs by the nearest class-name prompt: files, or a manifest's accuracy."""
    from omnifuse.align import DEFAULT_TEMPLATES, ZeroShotClassifier, load_aligned

    model = load_aligned(model_dir)
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    prompts = tuple(templates or DEFAULT_TEMPLATES)
    if manifest is not None:
        _zero_shot_manifest(model, manifest, names, prompts, label, split, modality)
        return
    if not inputs or names is None:
        raise typer.BadParameter("give files and --classes, or --manifest", param_hint="INPUTS")
    classifier = ZeroShotClassifier(model, names, prompts)
    scores = classifier.scores([str(p) for p in inputs], modality)
    table = Table(title="zero-shot", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("input", "class", "cosine"):
        table.add_column(column, justify="right" if column == "cosine" else "left")
    for path, row in zip(inputs, scores, strict=True):
        best = int(row.argmax())
        table.add_row(path.name, names[best], f"{row[best]:.3f}")
    console.print(table)


def _zero_shot_manifest(
    model: Any,
    manifest: Path,
    names: list[str] | None,
    prompts: tuple[str, ...],
    label: str,
    split: str,
    modality: str,
) -> None:
    from omnifuse.align import ZeroShotClassifier
    from omnifuse.data.manifest import load_manifest

    loaded = load_manifest(manifest)
    model.head_for(modality)
    column = model.specs[modality].column
    rows = loaded.samples if split == "all" else loaded.split(split)
    names = names or sorted({str(r[label]) for r in rows if label in r})
    rows = [r for r in rows if str(r.get(label)) in names and column in r]
    if not rows:
        raise typer.BadParameter(
            f"no row of split {split!r} has one of the classes", param_hint="--classes"
        )
    classifier = ZeroShotClassifier(model, [_prompt_name(n) for n in names], prompts)
    predicted = classifier.predict_indices([r[column] for r in rows], modality)
    truth = [names.index(str(r[label])) for r in rows]
    accuracy = {n: _class_accuracy(predicted, truth, i) for i, n in enumerate(names)}
    table = Table(title=f"zero-shot on {manifest.name} ({split})", box=box.SIMPLE_HEAD)
    table.add_column("class")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    for name, (count, value) in accuracy.items():
        table.add_row(name, str(count), f"{value:.3f}")
    overall = sum(int(p == t) for p, t in zip(predicted, truth, strict=True)) / len(truth)
    table.add_row("[bold]all[/]", str(len(truth)), f"[bold]{overall:.3f}[/]")
    console.print(table)


def _prompt_name(name: str) -> str:
    """A class name as it reads in a prompt: "T-shirt/top" → "t-shirt or top"."""
    return name.lower().replace("/", " or ")


def _class_accuracy(predicted: Any, truth: Sequence[int], index: int) -> tuple[int, float]:
    members = [i for i, t in enumerate(truth) if t == index]
    if not members:
        return 0, float("nan")
    return len(members), sum(int(predicted[i] == index) for i in members) / len(members)


def retrieval_table(report: Mapping[str, Mapping[str, Any]], *, title: str) -> Table:
    """One row per direction: R@1/5/10, MRR, mAP, and R@1 at chance."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("direction")
    for name in (*TABLE_METRICS, "chance R@1", "queries"):
        table.add_column(name, justify="right")
    for name, values in report.items():
        cells = [f"{float(values[m]):.3f}" for m in TABLE_METRICS]
        cells.append(f"{float(values['chance']['R@1']):.3f}")
        table.add_row(name, *cells, str(values["queries"]))
    return table
