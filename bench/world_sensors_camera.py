"""What the world-sensors camera features show of a mover's direction, read from a sweep's cache.

After ``omnifuse sweep --data world-sensors --out DIR``, this probe takes the cached pooled
``camera`` features of every clip whose camera is not dark and, for each of its two movers, asks
an MLP (scikit-learn, 256 hidden units) for that mover's direction given the features plus the
mover's shape (one-hot). It trains on the sweep's training split and prints the test accuracy and
the confusion counts: left against right and up against down show whether the frame features
keep the sign of a motion along each axis. About 10 s:

    python bench/world_sensors_camera.py runs/sweep-world-sensors
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from benchkit import markdown_table
from omnifuse.data.cache import CachedFeatureDataset, FeatureCache
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.scene import SHAPES
from omnifuse.data.world.video import DIRECTIONS


def probe(sweep: Path) -> tuple[float, Counter[tuple[str, str]]]:
    """Test accuracy of direction-from-camera and the (true, predicted) counts."""
    data = next((sweep / "data").iterdir())
    cache = FeatureCache(next((sweep / "cache").iterdir()))
    manifest = load_manifest(data / "sensors.jsonl")
    rows = [json.loads(line) for line in (data / "sensors.jsonl").read_text().splitlines()]
    camera = CachedFeatureDataset(cache, manifest, ["camera"], label_column="event")
    features, targets, splits = [], [], []
    for i, row in enumerate(rows):
        if row["condition"] == "dark-camera":
            continue
        pooled = camera[i].features["camera"][1].numpy()
        for role in ("sounding", "distractor"):
            shape = np.eye(len(SHAPES))[SHAPES.index(row[role]["shape"])]
            features.append(np.concatenate([pooled, 3.0 * shape]))
            targets.append(row[role]["direction"])
            splits.append(row["split"])
    x, y, split = np.stack(features), np.array(targets), np.array(splits)
    train, test = split == "train", split == "test"
    scaler = StandardScaler().fit(x[train])
    model = MLPClassifier((256,), alpha=1e-2, max_iter=2000, random_state=0)
    model.fit(scaler.transform(x[train]), y[train])
    predicted = model.predict(scaler.transform(x[test]))
    return float((predicted == y[test]).mean()), Counter(zip(y[test], predicted, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the --out folder of a world-sensors sweep")
    args = parser.parse_args()
    accuracy, counts = probe(args.sweep)
    names = list(DIRECTIONS)
    rows = [[true, *(str(counts[(true, p)]) for p in names)] for true in names]
    print(markdown_table(["true \\ predicted", *names], rows, "l" + "r" * len(names)))
    for a, b in (("left", "right"), ("up", "down")):
        right = counts[(a, a)] + counts[(b, b)]
        within = right + counts[(a, b)] + counts[(b, a)]
        print(f"{a} vs {b}: {right} of {within} with the sign right")
    print(f"direction of a named mover from camera features: {accuracy:.3f}")


if __name__ == "__main__":
    main()
