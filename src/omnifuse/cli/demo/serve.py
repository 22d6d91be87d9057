"""The last part of ``omnifuse demo``: a world VQA fusion model for ``/v1/predict`` and the HTTP
API with the web page on loopback, serving everything the demo trained."""

from __future__ import annotations

import time
from pathlib import Path

from omnifuse.cli.render import console

VQA_MODEL = "world-vqa"


def vqa_model_demo(world: Path, out: Path, *, seed: int) -> Path:
    """A gated-fusion answer classifier over image + question (cached features); the web page
    shows its modality contributions. Returns the folder of model folders."""
    from omnifuse.train.recipe import RunConfig, run

    models = out / "models"
    config = RunConfig.from_dict(
        {
            "data": {"manifest": str(world / "vqa.jsonl"), "target": "answer"},
            "encoders": {
                "image": {"name": "effnet-lite0", "image_size": 128},
                "question": {"name": "minilm"},
            },
            "cache": {"dir": str(out / "cache"), "batch_size": 32},
            "model": {"task": "vqa", "fusion": "gated", "head": "classifier"},
            "train": {"epochs": 15, "batch_size": 32, "seed": seed},
            "output": str(models / VQA_MODEL),
        }
    )
    console.print(f"[bold]fusion model[/] for /v1/predict: world VQA (gated) → {models}")
    start = time.perf_counter()
    run(config)
    console.print(f"  trained in {time.perf_counter() - start:.1f} s")
    return models


def serve_demo(*, models: Path, index: Path, align: Path, port: int, seconds: float | None) -> None:
    """Serve the API and page on 127.0.0.1; until Ctrl-C, or for ``seconds`` when given."""
    from omnifuse.cli.serve import print_banner
    from omnifuse.serve import ServeConfig
    from omnifuse.serve.runner import BackgroundServer, serve_forever

    config = ServeConfig(port=port, models_dir=models, index_dir=index, align_dir=align)
    config.validate()
    if seconds is None:
        console.print("the web page is at the URL below; Ctrl-C stops the server")
        serve_forever(config, log_level="warning", on_bound=print_banner)
        return
    with BackgroundServer(config) as server:
        print_banner(server.config)
        console.print(f"serving for {seconds:.0f} s (--serve-seconds)")
        time.sleep(seconds)
