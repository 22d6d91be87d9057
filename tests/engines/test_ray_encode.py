"""``omnifuse encode --engine ray``: the same cache as the local engine, a killed actor's batch
retried, a killed driver resumed without redoing finished shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from engine_encoders import KillOnce
from PIL import Image
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.data.cache import FeatureCache, encode_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.engines import create_engine

SCHEMA = ManifestSchema(modalities={"image": "image", "text": "text"}, id="id", split=None)
CNN = {"dim": 16, "image_size": 16, "channels": [8]}
DRIVER = Path(__file__).with_name("encode_driver.py")


def image_manifest(folder: Path, count: int, *, bad: bool = True) -> Path:
    """``count`` random images with captions, two repeated contents, and (with ``bad``) a
    corrupt image and a missing one."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        pixels = np.random.default_rng(i % (count - 2)).integers(0, 256, (20, 24, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        rows.append({"id": f"s{i}", "image": f"{i}.png", "text": f"scene {i} " + "red " * (i % 4)})
    if bad:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        rows.append({"id": "broken", "image": "broken.png", "text": "a broken picture"})
        rows.append({"id": "gone", "image": "missing.png", "text": "a missing picture"})
    write_manifest(folder / "m.jsonl", rows, SCHEMA)
    return folder / "m.jsonl"


def max_difference(a: Path, b: Path, column: str) -> float:
    """Largest |Δ| over every stored pooled vector and token of ``column``; the key sets match."""
    left, right = FeatureCache(a), FeatureCache(b)
    assert sorted(left.keys(column)) == sorted(right.keys(column))
    worst = 0.0
    for key in left.keys(column):
        for x, y in (
            (left.get(column, key).pooled, right.get(column, key).pooled),
            (left.tokens(column, key).float(), right.tokens(column, key).float()),
        ):
            worst = max(worst, float((x - y).abs().max()))
    return worst


def test_cli_ray_encode_writes_the_local_cache(ray_address: str, tmp_path: Path) -> None:
    manifest = image_manifest(tmp_path / "data", 22)
    local = encode_manifest(
        manifest,
        {"image": "cnn-image", "text": "gru-text"},
        tmp_path / "local",
        encoder_config={"image": CNN},
        batch_size=4,
        shard_size=8,
    )
    args = ["encode", str(manifest), "-e", "image=cnn-image,text=gru-text"]
    args += ["-c", "image.dim=16", "-c", "image.image_size=16", "-c", "image.channels=[8]"]
    args += ["--out", str(tmp_path / "ray"), "--batch-size", "4", "--shard-size", "8"]
    args += ["--engine", "ray", "--address", ray_address, "--workers", "2"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, (result.output, result.exception)
    assert "2 item(s) skipped" in result.output and "CorruptInputError" in result.output
    for column in ("image", "text"):
        assert max_difference(tmp_path / "local", tmp_path / "ray", column) <= 1e-6
        shards = sorted(p.name for p in (tmp_path / "local" / column).glob("shard-*"))
        assert shards == sorted(p.name for p in (tmp_path / "ray" / column).glob("shard-*"))
    errors = [(tmp_path / d / "errors.jsonl").read_text() for d in ("local", "ray")]
    assert errors[0] == errors[1] and "broken" in errors[0] and "missing.png" in errors[0]
    assert local.columns["image"].encoded == 20 and local.columns["image"].reused == 0


def test_a_killed_actor_has_its_batch_retried(ray_address: str, tmp_path: Path) -> None:
    manifest = image_manifest(tmp_path / "data", 12, bad=False)
    torch.manual_seed(0)
    encoder = KillOnce(**CNN)  # type: ignore[arg-type]
    encoder.marker = str(tmp_path / "killed")
    with create_engine("ray", address=ray_address, workers=1) as engine:
        report = encode_manifest(
            manifest,
            {"image": encoder},
            tmp_path / "ray",
            batch_size=3,
            shard_size=6,
            engine=engine,
        )
    killed = int((tmp_path / "killed").read_text())
    assert killed != os.getpid()
    assert report.columns["image"].encoded == 10 and not report.skipped
    reference = encode_manifest(  # the marker exists now: this run is not interrupted
        manifest, {"image": encoder}, tmp_path / "local", batch_size=3, shard_size=6
    )
    assert reference.columns["image"].encoded == 10
    assert max_difference(tmp_path / "local", tmp_path / "ray", "image") <= 1e-6


def run_driver(manifest: Path, out: Path, address: str, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(manifest), str(out), address, str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def shard_keys(column_dir: Path) -> dict[str, int]:
    """Shard file → how many keys it holds."""
    from safetensors import safe_open

    counts = {}
    for path in sorted(column_dir.glob("shard-*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            counts[path.name] = len(json.loads(f.metadata()["keys"]))
    return counts


def test_a_killed_driver_resumes_without_redoing_finished_shards(
    ray_address: str, tmp_path: Path
) -> None:
    manifest = image_manifest(tmp_path / "data", 26, bad=False)  # 24 distinct images
    out = tmp_path / "cache"
    driver = run_driver(manifest, out, ray_address, delay=0.4)
    deadline = time.monotonic() + 120
    while len(shard_keys(out / "image")) < 2:
        assert driver.poll() is None, "the driver finished before it could be killed"
        assert time.monotonic() < deadline, "no shard written in time"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    before = shard_keys(out / "image")
    stamps = {name: (out / "image" / name).stat().st_mtime_ns for name in before}
    done = sum(before.values())
    assert 2 <= len(before) < 6 and done < 24

    resumed = run_driver(manifest, out, ray_address, delay=0.0)
    stdout, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stdout
    report = json.loads(stdout.strip().splitlines()[-1])

    assert report == {"encoded": 24 - done, "reused": done, "skipped": 0}
    assert {n: (out / "image" / n).stat().st_mtime_ns for n in before} == stamps
    assert sum(shard_keys(out / "image").values()) == 24
    assert not list((out / "image").glob(".shard-*.tmp"))
