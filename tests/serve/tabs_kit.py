"""What the tests of the page's Search and Experiments tabs and their routes serve: a caption
index whose items name their scene's picture (so thumbnails come from ``/v1/items/image``), and
an experiments folder holding a real sweep and a real tune study, each run here on small data.

Built once per test session under the base temporary folder, like :func:`web_fixtures.web_assets`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnifuse.serve import ServeConfig
from omnifuse.sweep import SweepConfig

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

BASE_URL = "http://127.0.0.1"

SWEEP_ID = "sweeps:av-digits"
TUNE_ID = "tunes:tracks"
SMALL_ENCODERS = {
    "image": {"name": "cnn-image", "dim": 16, "image_size": 16, "channels": [8]},
    "audio": {"name": "logmel-cnn", "dim": 16, "n_mels": 16},
}
SWEEP_STRATEGIES = {"concat", "late-mean", "image only", "audio only"}
"""What :func:`run_small_sweep` trains: two fusions and each modality alone."""


def client_for(config: ServeConfig) -> TestClient:
    """The real app of ``config`` called in process, as from this machine (an allowed Host)."""
    from fastapi.testclient import TestClient

    from omnifuse.serve import create_app

    return TestClient(create_app(config), base_url=BASE_URL)


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error of ``response``, checked: status ``status``, the one JSON error shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["message"]
    return dict(error)


def build_picture_index(world: Path, out: Path) -> Path:
    """A FAISS index of the world's captions (MiniLM, the server's text encoder) whose items carry
    their caption, split, object count and the path of their scene's picture — no thumbnail, so
    the page fetches each picture from the server."""
    from omnifuse import encoders
    from omnifuse.cli.demo.search import read_rows
    from omnifuse.index import create_index

    rows = read_rows(world / "scenes.jsonl")
    encoder = encoders.create("minilm")
    vectors = encoder.encode([row["caption"] for row in rows]).pooled.float().numpy()
    vectors /= (vectors**2).sum(axis=1, keepdims=True) ** 0.5
    index = create_index(
        "faiss-flat",
        out,
        dim=vectors.shape[1],
        metric="ip",
        attributes={"encoder": "minilm", "modality": "text"},
    )
    metadata = [
        {
            "modality": "text",
            "caption": row["caption"],
            "split": row["split"],
            "n_objects": row["n_objects"],
            "image": str(world / row["image"]),
        }
        for row in rows
    ]
    index.add([row["id"] for row in rows], vectors, metadata)
    index.close()
    return out


def picture_index(basetemp: Path, world: Path, out: Path) -> Path:
    """A private copy (a server holds its index open) of the session's picture index."""
    shared = basetemp / "picture-index"
    if not (shared / "ready").exists():
        shutil.rmtree(shared, ignore_errors=True)
        build_picture_index(world, shared / "index")
        (shared / "ready").touch()
    shutil.copytree(shared / "index", out)
    return out


def run_small_sweep(out: Path, work: Path) -> Path:
    """A real av-digits sweep: concat and late-mean fusions and each modality alone, six
    epochs on 160 samples with small random-weight encoders; leaderboard, results and plots."""
    from omnifuse.sweep import run_sweep

    config = SweepConfig(
        data="av-digits",
        fusions=["concat", "late-mean"],
        out=out,
        size=160,
        data_dir=work / "av-digits",
        cache_dir=work / "cache",
        epochs=6,
        batch_size=16,
        dim=16,
        encoders=SMALL_ENCODERS,
        singles=["concat"],
        dropout_study=[],
        progress=False,
    )
    run_sweep(config)
    return out


def run_small_tune(out: Path, work: Path) -> Path:
    """A real tune study of three trials on a track-and-record manifest, with accuracy, latency
    and size as objectives (so its folder has a Pareto plot)."""
    from omnifuse.tune import SearchSpace, TuneConfig, run_tune
    from synthetic_manifests import write_tracks_and_records

    manifest = write_tracks_and_records(work / "tracks")
    base = SweepConfig(data=str(manifest), out=out, batch_size=32, progress=False)
    space = SearchSpace(fusions=("concat", "late-mean"), dims=(16,), epochs=(2, 3))
    config = TuneConfig(
        base=base,
        space=space,
        trials=3,
        objectives=("accuracy", "latency", "params"),
        prune_after=0,
        progress=False,
    )
    run_tune(config)
    return out


def experiments_folder(basetemp: Path) -> Path:
    """``sweeps/av-digits`` (a sweep) and ``tunes/tracks`` (a tune study), built once per
    session; tests that add files copy it first."""
    shared = basetemp / "experiments-assets"
    root = shared / "experiments"
    if not (shared / "ready").exists():
        shutil.rmtree(shared, ignore_errors=True)
        run_small_sweep(root / "sweeps" / "av-digits", shared / "work")
        run_small_tune(root / "tunes" / "tracks", shared / "work")
        (shared / "ready").touch()
    return root
