"""The last part of ``omnifuse demo``: a world VQA fusion model for ``/v1/predict`` and the HTTP
API with the web page on loopback, serving everything the demo trained."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omnifuse.cli.render import console

VQA_MODEL = "world-vqa"
VQA_RECIPE = "demo-vqa"


def vqa_model_demo(world: Path, out: Path, *, seed: int) -> Path:
    """A gated-fusion answer classifier over image + question (cached features); the web page
    shows its modality contributions. Returns the folder of model folders."""
    from omnifuse.train.recipe import read_run_config, run

    models = out / "models"
    config = read_run_config(
        VQA_RECIPE,
        [
            f"data.manifest={json.dumps(str(world / 'vqa.jsonl'))}",
            f"cache.dir={json.dumps(str(out / 'cache'))}",
            f"train.seed={seed}",
            f"output={json.dumps(str(models / VQA_MODEL))}",
        ],
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
