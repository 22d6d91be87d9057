"""The demo's steps in order: datasets, a fusion sweep, alignment and search, speech and the
LLM, then the HTTP API and web page on loopback."""

from __future__ import annotations

import time
from pathlib import Path

from omnifuse.cli.demo.assistant import ask_demo, captioner_demo, transcribe_demo
from omnifuse.cli.demo.search import align_demo, index_demo
from omnifuse.cli.demo.serve import serve_demo, vqa_model_demo
from omnifuse.cli.demo.sweep import sweep_demo
from omnifuse.cli.render import console, examples_table, summary_table
from omnifuse.data import builders
from omnifuse.data.summary import ManifestSummary, summarize_dataset

# dataset -> size used by the demo: small enough to build in about a minute on 2 cores
DEMO_SIZES = {"world": 300, "av-digits": 300, "fashion-mnist": 300, "speech-test": 1000}


def run_demo(out: Path, *, seed: int, serve: bool, port: int, serve_seconds: float | None) -> None:
    """Build everything into ``out``; end by serving it when ``serve`` (see ``omnifuse demo``)."""
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
    ask_demo(world, captioner, models=models, index=index, aligned=aligned)
    if serve:
        serve_demo(models=models, index=index, align=aligned, port=port, seconds=serve_seconds)
