"""A user's manifest with a sensor track and a table record sweeps like any other: every fusion
trains on them, missing-modality scores, Shapley values, noise curves of the new kinds and the
per-group accuracy all come out, with no special case for the new kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.sweep import SweepConfig, run_sweep


def write_tracks_and_records(out: Path, count: int = 240) -> Path:
    """The label needs both inputs: the track rises or falls, and the record's ``mount`` says
    whether the sensor is upside down (which flips what the trend means)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(count):
        rising, flipped = bool(rng.integers(2)), bool(rng.integers(2))
        steps = int(rng.integers(10, 40))
        trend = np.linspace(0.0, 1.0 if rising else -1.0, steps)[:, None]
        track = trend + rng.normal(0.0, 0.15, size=(steps, 2))
        up = rising != flipped
        split = "train" if i < 160 else "val" if i < 200 else "test"
        rows.append(
            {
                "id": f"s{i:03d}",
                "split": split,
                "track": {"values": np.round(track, 4).tolist(), "rate": 10.0},
                "height": round(float(rng.normal(1.5, 0.3)), 3),
                "mount": "inverted" if flipped else "upright",
                "condition": "short" if steps < 20 else "long",
                "label": "up" if up else "down",
            }
        )
    schema = ManifestSchema(
        modalities={"track": "series", "record": "tabular"},
        labels=["label"],
        tables={"record": {"numeric": ["height"], "categorical": ["mount"]}},
        extra=["condition"],
    )
    path = out / "tracks.jsonl"
    write_manifest(path, rows, schema)
    return path


def test_series_and_tables_sweep_with_every_evaluation(tmp_path: Path) -> None:
    manifest = write_tracks_and_records(tmp_path)
    config = SweepConfig(
        data=str(manifest),
        fusions=["concat", "transformer", "late-mean"],
        out=tmp_path / "sweep",
        epochs=30,
        batch_size=32,
        dim=32,
        head_hidden=32,
        singles=["concat"],
        dropout_study=[],
        noise=True,
        noise_samples=16,
        group_by="condition",
        progress=False,
        workers=1,
    )
    result = run_sweep(config)
    by_name = {r.name: r for r in result.results}
    assert set(by_name) == {"concat", "transformer", "late-mean", "track only", "record only"}
    fused = max(by_name[n].accuracy for n in ("concat", "transformer"))
    singles = max(by_name[n].accuracy for n in ("track only", "record only"))
    assert fused > singles + 0.15, (fused, singles)  # the label needs both inputs
    concat = by_name["concat"]
    assert set(concat.groups) == {"short", "long"}
    assert {tuple(s.present) for s in concat.subsets} >= {("track",), ("record",)}
    assert set(concat.shapley) == {"track", "record"}
    assert {c.noise for c in concat.noise} == {"jitter", "stale", "missing-fields"}
    board = (tmp_path / "sweep" / "leaderboard.md").read_text()
    assert "@ short" in board and "track only" in board
