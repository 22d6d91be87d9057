"""``omnifuse generate``: train a text-to-image generator and draw images from prompts.

::

    omnifuse generate train --config world-generate              # about 45 minutes on a CPU
    omnifuse generate image "a red circle to the left of a blue square" \\
        --model runs/generate-world --out circle.png --steps 30 --guidance 3 --seed 0
    omnifuse generate image "two red stars" -m runs/generate-world -o stars.png \\
        --sampler heun --steps 15
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from omnifuse.cli.launch import Nnodes, Nproc, RdzvEndpoint, relaunch
from omnifuse.cli.options import OutputFolder, Overrides, recipe_option, recipe_overrides
from omnifuse.cli.render import console
from omnifuse.generate.flow import Sampler
from omnifuse.generate.model import DEFAULT_GUIDANCE

app = typer.Typer(help="Generate images from text; train the generator.", no_args_is_help=True)


@app.command("train")
def train(
    config: Annotated[str, recipe_option("world-generate")],
    overrides: Overrides = None,
    output: OutputFolder = None,
    data: Annotated[
        Path | None,
        typer.Option(help="A manifest of your own (image + text columns) instead of the recipe's."),
    ] = None,
    nproc: Nproc = 1,
    nnodes: Nnodes = 1,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Train a generator as the run file says; sample grids go to OUTPUT/samples/."""
    from omnifuse.generate import read_generate_config, train_generator
    from omnifuse.train import distributed

    settings = recipe_overrides(overrides, output)
    if data is not None:
        settings.append(f"data={json.dumps({'manifest': str(data)})}")
    if relaunch(nproc, nnodes, rdzv_endpoint):
        return
    parsed = read_generate_config(config, settings)
    _, result = train_generator(parsed)
    if distributed.is_main():
        console.print(
            f"[green]done[/] {len(result.history)} epoch(s), best epoch {result.best_epoch} "
            f"({result.metric} {result.best_metric:.4f}) in {result.seconds:.0f} s → "
            f"{parsed.output}",
            soft_wrap=True,
        )


@app.command("image")
def image(
    prompt: Annotated[list[str], typer.Argument(help="One or more prompts.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A generator folder.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="PNG to write (several prompts or --count: NAME-1.png, ...)."
        ),
    ],
    steps: Annotated[int, typer.Option(help="Sampling steps.")] = 30,
    guidance: Annotated[
        float, typer.Option(help="Classifier-free guidance scale.")
    ] = DEFAULT_GUIDANCE,
    seed: Annotated[
        int, typer.Option(help="Seed of the noise; the same seed, the same image.")
    ] = 0,
    sampler: Annotated[
        str,
        typer.Option(
            help="euler (one network call a step) or heun (second order: two calls a step, "
            "one for the last)."
        ),
    ] = "euler",
    count: Annotated[int, typer.Option(min=1, help="Images per prompt (seeds seed, seed+1…).")] = 1,
    scale: Annotated[int, typer.Option(min=1, help="Upscale the PNG (nearest) for viewing.")] = 1,
) -> None:
    """Draw images from prompts with a trained generator."""
    from PIL import Image

    from omnifuse.generate import check_sampling, load_generator

    check_sampling(steps, guidance, sampler)
    generator = load_generator(model)
    jobs = [(p, seed + k) for p in prompt for k in range(count)]
    written = []
    for n, (text, s) in enumerate(jobs, start=1):
        picture = generator.generate(
            [text], steps=steps, guidance=guidance, seed=s, sampler=cast(Sampler, sampler)
        )[0]
        if scale > 1:
            picture = picture.resize(
                (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
            )
        path = out if len(jobs) == 1 else out.with_name(f"{out.stem}-{n}{out.suffix or '.png'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, format="PNG")
        written.append(path)
    for path in written:
        console.print(f"[green]wrote[/] {path}", soft_wrap=True)
