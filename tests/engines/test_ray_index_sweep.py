"""``omnifuse index build --engine ray`` and ``omnifuse sweep --engine ray`` give what the local
engine gives: the same items, vectors and skipped items; the same strategies and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from omnifuse.align import AlignedModel, load_aligned, save_aligned
from omnifuse.align.heads import HeadSpec
from omnifuse.align.model import ModalitySpec
from omnifuse.cli import app
from omnifuse.index import open_index
from omnifuse.sweep import SweepConfig, run_sweep

SMALL_ENCODERS = {
    "image": {"name": "cnn-image", "dim": 16, "image_size": 16, "channels": [8]},
    "audio": {"name": "logmel-cnn", "dim": 16, "n_mels": 16},
}


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture
def items(tmp_path: Path) -> Path:
    """Ten coloured squares with captions, and one broken image."""
    rows = []
    for i in range(10):
        rgb = tuple(int(v) for v in np.random.default_rng(i).integers(0, 256, 3))
        Image.new("RGB", (24, 24), rgb).save(tmp_path / f"{i}.png")
        rows.append({"id": f"s{i}", "image": f"{i}.png", "caption": f"square number {i}"})
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    rows.append({"id": "s10", "image": "broken.png", "caption": "a broken picture"})
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema = {"modalities": {"image": "image", "caption": "text"}, "id": "id", "split": None}
    (tmp_path / "items.schema.json").write_text(json.dumps(schema))
    return tmp_path / "items.jsonl"


def test_index_build_on_ray_equals_local(ray_address: str, items: Path, tmp_path: Path) -> None:
    specs = {
        "text": ModalitySpec(
            "caption", {"name": "gru-text", "seed": 0}, HeadSpec(input_dim=128, dim=24)
        ),
        "image": ModalitySpec(
            "image", {"name": "cnn-image", "seed": 0}, HeadSpec(input_dim=128, dim=24)
        ),
    }
    model = save_aligned(AlignedModel(specs), tmp_path / "model")
    common = ["index", "build", "--manifest", items, "--model", model, "--backend", "faiss-flat"]
    local = invoke(*common, "--out", tmp_path / "local", "--batch-size", "3")
    ray = invoke(
        *common, "--out", tmp_path / "ray", "--batch-size", "3", "--engine", "ray",
        "--address", ray_address, "--workers", "2",
    )  # fmt: skip
    for output in (local, ray):
        assert "added 21 item(s), 1 skipped" in output and "s10:image" in output

    embedder = load_aligned(model)
    texts = embedder.embed("text", ["square number 3", "a red thing"])
    images = embedder.embed("image", [str(items.parent / "5.png")])
    indexes = [open_index(tmp_path / name, read_only=True) for name in ("local", "ray")]
    try:
        assert len(indexes[0]) == len(indexes[1]) == 21
        mine, theirs = (ix.search(np.concatenate([texts, images]), k=21) for ix in indexes)
        for a, b in zip(mine, theirs, strict=True):
            assert [h.id for h in a] == [h.id for h in b]
            assert [h.metadata for h in a] == [h.metadata for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
    finally:
        for ix in indexes:
            ix.close()


def test_sweep_on_ray_equals_local(ray_address: str, tmp_path: Path) -> None:
    config = SweepConfig(
        data="av-digits",
        fusions=["concat", "late-mean"],
        out=tmp_path / "local",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        size=80,
        epochs=2,
        batch_size=16,
        dim=16,
        encoders=SMALL_ENCODERS,
        singles=["concat"],
        dropout_study=[],
        plots=False,
        progress=False,
    )
    local = run_sweep(config)
    args = ["sweep", "--data", "av-digits", "--fusions", "concat,late-mean", "--size", 80]
    args += ["--epochs", 2, "--batch-size", 16, "--dim", 16, "--singles", "concat"]
    args += ["--dropout-study", "none", "--no-plots", "--out", tmp_path / "ray"]
    args += ["--data-dir", tmp_path / "data", "--cache", tmp_path / "cache"]
    args += ["--engine", "ray", "--address", ray_address, "--workers", 2]
    for column, spec in SMALL_ENCODERS.items():
        args += [f"--encoder={column}={spec['name']}"]
        args += [f"--encoder={column}.{k}={json.dumps(v)}" for k, v in spec.items() if k != "name"]
    invoke(*args)

    on_ray = json.loads((tmp_path / "ray" / "results.json").read_text())["results"]
    expected = {r.name: r.metrics for r in local.results}
    assert sorted(r["name"] for r in on_ray) == sorted(expected)
    for result in on_ray:
        assert result["metrics"] == pytest.approx(expected[result["name"]], abs=1e-6)


def test_tune_workers_on_ray_share_one_study(ray_address: str, tmp_path: Path) -> None:
    args = ["tune", "--data", "av-digits", "--fusions", "concat,late-mean", "--size", 80]
    args += ["--trials", 4, "--epochs", "2..3", "--batch-size", 16, "--no-plots"]
    args += [
        "--out",
        tmp_path / "tune",
        "--data-dir",
        tmp_path / "data",
        "--cache",
        tmp_path / "cache",
    ]
    args += ["--engine", "ray", "--address", ray_address, "--workers", 2]
    for column, spec in SMALL_ENCODERS.items():
        args += [f"--encoder={column}={spec['name']}"]
        args += [f"--encoder={column}.{k}={json.dumps(v)}" for k, v in spec.items() if k != "name"]
    invoke(*args)
    record = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert record["counts"].get("complete", 0) + record["counts"].get("pruned", 0) == 4
    assert (tmp_path / "tune" / "best" / "config.json").is_file()
