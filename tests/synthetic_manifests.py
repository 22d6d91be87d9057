"""Small manifests of a user's own data, written by tests that need one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnifuse.data.schema import ManifestSchema, write_manifest


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
