"""``omnifuse demo``: the main job on the built-in data (``make demo`` runs it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from omnifuse.cli.demo_assistant import ask_demo, captioner_demo, transcribe_demo
from omnifuse.cli.demo_search import align_demo, index_demo
from omnifuse.cli.demo_serve import serve_demo, vqa_model_demo
from omnifuse.cli.render import console, examples_table, summary_table
from omnifuse.data import builders
from omnifuse.data.summary import ManifestSummary, summarize_dataset

# dataset -> size used by the demo: small enough to build in about a minute on 2 cores
DEMO_SIZES = {"world": 300, "av-digits": 300, "fashion-mnist": 300, "speech-test": 1000}
# the fusion sweep of the demo: every fusion on a small av-digits, about 70 s on 2 cores
SWEEP_SIZE = 1000
SWEEP_EPOCHS = 10


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for everything it builds.")
    ] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Random seed for the generated data.")] = 0,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="End by serving the API and web page.")
    ] = True,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the demo server.")] = 8000,
    serve_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="Stop the server after this long (default: at Ctrl-C)."),
    ] = None,
) -> None:
    """The main job on the built-in data: datasets, a fusion sweep, alignment and search, speech
    and the LLM, then the HTTP API and web page on loopback."""
    summaries: list[ManifestSummary] = []
    for name, size in DEMO_SIZES.items():
        folder = out / "data" / name
        start = time.perf_counter()
        console.print(f"[bold]building[/] {name} (size {size}) → {folder}")
        builders.build(name, folder, seed=seed, size=size)
        console.print(f"  done in {time.perf_counter() - start:.1f} s")
        summaries += summarize_dataset(folder)
    console.print(summary_table(summaries))
    console.print(examples_table(summaries))
    sweep_demo(out / "sweep", seed)
    world = out / "data" / "world"
    models = vqa_model_demo(world, out / "fusion", seed=seed)
    aligned = align_demo(world, out / "align", size=DEMO_SIZES["world"], seed=seed)
    index = index_demo(world, aligned, out / "align")
    transcribe_demo(out / "data" / "speech-test")
    captioner = captioner_demo(world, out / "caption", size=DEMO_SIZES["world"], seed=seed)
    ask_demo(world, captioner)
    if serve:
        serve_demo(models=models, index=index, align=aligned, port=port, seconds=serve_seconds)


def sweep_demo(out: Path, seed: int) -> None:
    """Every fusion strategy on a small av-digits (cached features, one budget), as a table."""
    from omnifuse.cli.sweep import leaderboard_table, print_summary
    from omnifuse.sweep import SweepConfig, run_sweep

    console.print(
        f"[bold]fusion sweep[/]: every fusion on av-digits (size {SWEEP_SIZE}, "
        f"{SWEEP_EPOCHS} epochs, test voices unseen in training) → {out}"
    )
    config = SweepConfig(
        data="av-digits",
        out=out,
        size=SWEEP_SIZE,
        seed=seed,
        epochs=SWEEP_EPOCHS,
        singles=["concat"],
        workers=min(2, os.cpu_count() or 1),
    )
    result = run_sweep(config)
    console.print(leaderboard_table(result.results, "av-digits fusion sweep (test split)"))
    print_summary(result)
