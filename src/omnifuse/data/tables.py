"""Real tables that scikit-learn ships inside its package: ``breast-cancer`` and ``wine``.

Wisconsin diagnostic breast cancer (569 tumours, 30 measurements of cell nuclei from a biopsy
image, malignant or benign) and the UCI wine recognition data (178 wines, 13 chemical
measurements, three cultivars) — measurements of the kind that sit beside images in a diagnosis.
Each builds ``manifest.csv`` with one ``tabular`` modality, ``record``, whose fields are the
measurements (declared in the schema's ``tables``), a ``label`` and a stratified split drawn from
the seed (60/20/20), so several seeds give several train/test splits of the same rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data._common import child_rng, split_counts
from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.errors import ConfigError
from omnifuse.fileio import write_json_atomic, write_text_atomic

SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}
DESCRIPTIONS = {
    "breast-cancer": "Wisconsin diagnostic breast cancer: 30 nucleus measurements, 2 classes",
    "wine": "UCI wine recognition: 13 chemical measurements, 3 cultivars",
}
SPLIT_STREAM = 1
ALL_ROWS = 100_000
"""A size above every bundled table's row count: keep them all."""


def _loader(name: str) -> Callable[[], Any]:
    from sklearn import datasets as sk

    return {"breast-cancer": sk.load_breast_cancer, "wine": sk.load_wine}[name]


def build_table(name: str, out: Path, *, seed: int, size: int) -> DatasetInfo:
    """Write the table ``name`` as a manifest; a ``size`` at least the table's row count keeps
    every row, a smaller one keeps that many, drawn per class in proportion."""
    bunch = _loader(name)()
    features = [str(f).replace(" ", "_") for f in bunch.feature_names]
    labels = [str(bunch.target_names[t]) for t in bunch.target]
    rows = _stratified_rows(np.asarray(bunch.target), seed, size)
    splits = _stratified_splits(np.asarray(bunch.target), rows, seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "split", *features, "label"])
    for i in rows:
        values = [repr(float(v)) for v in bunch.data[i]]
        writer.writerow([f"{name}-{i:04d}", splits[i], *values, labels[i]])
    write_text_atomic(out / "manifest.csv", buffer.getvalue())
    schema = ManifestSchema(
        modalities={"record": "tabular"},
        labels=["label"],
        tables={"record": {"numeric": features, "categorical": []}},
    )
    write_json_atomic(schema_path_for(out / "manifest.csv"), schema.to_dict())
    info = DatasetInfo(
        name=name,
        seed=seed,
        size=size,
        manifests={"classification": "manifest.csv"},
        description=DESCRIPTIONS[name],
        params={
            "rows": len(rows),
            "features": len(features),
            "classes": [str(c) for c in bunch.target_names],
        },
    )
    info.write(out)
    return info


def _stratified_rows(target: np.ndarray, seed: int, size: int) -> list[int]:
    if size < 1:
        raise ConfigError(f"size must be at least 1, got {size}")
    if size >= len(target):
        return list(range(len(target)))
    rng = child_rng(seed, 0)
    chosen: list[int] = []
    for label in np.unique(target):
        members = np.flatnonzero(target == label)
        take = max(1, round(size * len(members) / len(target)))
        chosen += rng.choice(members, size=min(take, len(members)), replace=False).tolist()
    return sorted(chosen)


def _stratified_splits(target: np.ndarray, rows: list[int], seed: int) -> dict[int, str]:
    """Each class's rows shuffled by the seed and cut 60/20/20, so every split has every class."""
    rng = child_rng(seed, SPLIT_STREAM)
    splits: dict[int, str] = {}
    for label in np.unique(target[rows]):
        members = [r for r in rows if target[r] == label]
        order = rng.permutation(len(members))
        counts = split_counts(len(members), SPLITS)
        names = [s for s, n in counts.items() for _ in range(n)]
        for position, split in zip(order, names, strict=True):
            splits[members[position]] = split
    return splits


@datasets.register("breast-cancer")
def build_breast_cancer(out: Path, *, seed: int = 0, size: int = ALL_ROWS) -> DatasetInfo:
    """Wisconsin diagnostic breast cancer (scikit-learn's bundled copy): 30 numeric fields."""
    return build_table("breast-cancer", Path(out), seed=seed, size=size)


@datasets.register("wine")
def build_wine(out: Path, *, seed: int = 0, size: int = ALL_ROWS) -> DatasetInfo:
    """UCI wine recognition (scikit-learn's bundled copy): 13 numeric fields, 3 cultivars."""
    return build_table("wine", Path(out), seed=seed, size=size)
