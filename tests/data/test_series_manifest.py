"""Series in manifests and batch jobs: good tracks are encoded, bad ones (ragged, NaN, infinity,
wrong dtype, absurd length, pickled, missing) are skipped and listed, and a bad table record is
skipped the same way — through ``omnifuse encode`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.data.cache import FeatureCache, encode_manifest
from omnifuse.data.manifest import load_manifest
from omnifuse.data.prepare import fit_encoders
from omnifuse.data.schema import ManifestSchema, write_manifest

GOOD = 6


def _manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    rows = []
    for i in range(GOOD):
        values = rng.normal(size=(int(rng.integers(5, 20)), 2)).astype(np.float32)
        if i % 2:
            np.save(tracks / f"t{i}.npy", values)
            track: object = f"tracks/t{i}.npy"
        else:
            track = {"values": values.tolist(), "rate": 5.0}
        rows.append({"id": f"good{i}", "split": "train", "track": track, "label": "a"})
    np.save(tracks / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save(tracks / "words.npy", np.array(["1", "2"]))
    np.save(tracks / "long.npy", np.zeros((500, 2), np.float32))
    bad = {
        "ragged": [[1.0, 2.0], [3.0]],
        "nan": [[1.0, float("nan")], [0.0, 0.0]],
        "infinity": [[1.0, float("inf")]],
        "pickled": "tracks/objects.npy",
        "dtype": "tracks/words.npy",
        "too-long": "tracks/long.npy",
        "channels": [[1.0, 2.0, 3.0]],
    }
    rows += [{"id": k, "split": "train", "track": v, "label": "b"} for k, v in bad.items()]
    path = tmp_path / "tracks.jsonl"
    write_manifest(path, rows, ManifestSchema(modalities={"track": "series"}, labels=["label"]))
    return path


def test_bad_series_are_skipped_and_listed_by_name(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    manifest = load_manifest(path)
    assert len(manifest) == GOOD + 7, "without decoding, only missing files are refused"
    decoded = load_manifest(path, decode=True)
    assert {i.line for i in decoded.issues} == set(range(GOOD + 1, GOOD + 6)), decoded.issues
    spec = {"name": "series-cnn", "dim": 8, "max_steps": 100}
    fitted = fit_encoders(manifest, {"track": spec})["track"]
    assert fitted["channels"] == 2 and len(fitted["mean"]) == 2
    config = {k: v for k, v in fitted.items() if k != "name"}
    report = encode_manifest(
        path, {"track": "series-cnn"}, tmp_path / "cache", encoder_config={"track": config}
    )
    skipped = {item.sample: (item.error, item.reason) for item in report.skipped}
    assert set(skipped) == {"ragged", "nan", "infinity", "pickled", "dtype", "too-long", "channels"}
    assert skipped["ragged"][0] == "InvalidValueError" and "ragged" in skipped["ragged"][1]
    assert "NaN" in skipped["nan"][1] and "infinity" in skipped["infinity"][1]
    assert skipped["pickled"][0] == "UnsupportedFormatError"
    assert skipped["too-long"][0] == "InputTooLargeError"
    assert "3 channel" in skipped["channels"][1]
    cache = FeatureCache(tmp_path / "cache")
    good = [s for s in manifest.samples if s["id"].startswith("good")]
    for sample in good:
        assert cache.has("track", cache.key_for("track", sample["track"]))


def test_encode_command_fits_and_reports(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "encode",
            str(path),
            "--encoders",
            "track=series-transformer",
            "--encoder-config",
            "track.patch=2",
            "--out",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "7 encoded" in result.output and "6 skipped" in result.output  # 500 steps is fine here
    meta = json.loads((tmp_path / "cache" / "cache.json").read_text())
    config = json.dumps(meta)
    assert '"channels": 2' in config and '"patch": 2' in config
