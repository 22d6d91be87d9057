"""The fashion-mnist builder: the package's real pixels and labels, balanced, deterministic."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from omnifuse.data.builders import datasets
from omnifuse.data.fashion_mnist import (
    CLASS_NAMES,
    DEFAULT_ROOT,
    build_fashion_mnist,
    caption,
    read_idx,
)
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.errors import CorruptInputError, MissingDependencyError

SIZE = 60
needs_data = pytest.mark.skipif(
    not (DEFAULT_ROOT / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="needs the Debian package dataset-fashion-mnist",
)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _idx_by_hand(name: str, header: int) -> np.ndarray:
    """The idx payload read with fixed header sizes, independently of :func:`read_idx`."""
    return np.frombuffer(gzip.decompress((DEFAULT_ROOT / name).read_bytes())[header:], np.uint8)


@pytest.fixture(scope="module")
def built(built_dataset: Callable[..., Path]) -> Path:
    return built_dataset("fashion-mnist", seed=0, size=SIZE)


@pytest.fixture(scope="module")
def source() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: (
            _idx_by_hand(f"{name}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            _idx_by_hand(f"{name}-labels-idx1-ubyte.gz", 8),
        )
        for name in ("train", "t10k")
    }


def test_captions_and_class_order() -> None:
    assert CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"
    assert caption("T-shirt/top") == "a photo of a t-shirt or top"
    assert caption("Ankle boot") == "a photo of an ankle boot"
    assert caption("Sneaker") == "a photo of a sneaker"


def test_registered_under_its_name() -> None:
    assert datasets.get("fashion-mnist") is build_fashion_mnist


@needs_data
def test_images_and_labels_equal_the_idx_files(
    built: Path, source: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    rows = _rows(built / "manifest.jsonl")
    assert len(rows) == SIZE
    for row in rows:
        images, labels = source[row["source"]]
        assert row["label_id"] == int(labels[row["source_index"]])
        assert row["label"] == CLASS_NAMES[row["label_id"]]
        assert row["text"] == caption(row["label"])
        with Image.open(built / row["image"]) as image:
            assert image.mode == "L" and image.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(image), images[row["source_index"]])


@needs_data
def test_splits_are_balanced_disjoint_and_from_the_right_file(built: Path) -> None:
    rows = _rows(built / "manifest.jsonl")
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in by_split.items()} == {"train": 42, "val": 9, "test": 9}
    assert {r["source"] for r in by_split["test"]} == {"t10k"}
    assert {r["source"] for r in by_split["train"] + by_split["val"]} == {"train"}
    train_idx = {r["source_index"] for r in by_split["train"]}
    assert not train_idx & {r["source_index"] for r in by_split["val"]}
    for split_rows in by_split.values():
        counts = Counter(r["label_id"] for r in split_rows)
        full = [counts.get(label, 0) for label in range(10)]
        assert max(full) - min(full) <= 1


@needs_data
def test_manifests_and_schemas(built: Path) -> None:
    info = DatasetInfo.read(built)
    assert info.manifests == {
        "alignment": "manifest.jsonl",
        "classification": "classification.jsonl",
    }
    align = ManifestSchema.from_dict(
        json.loads(schema_path_for(built / "manifest.jsonl").read_text())
    )
    assert align.modalities == {"image": "image", "text": "text"}
    classify_path = built / "classification.jsonl"
    classify = ManifestSchema.from_dict(json.loads(schema_path_for(classify_path).read_text()))
    assert classify.modalities == {"image": "image"} and classify.labels == ["label"]
    untexted = _rows(classify_path)
    assert [r["id"] for r in untexted] == [r["id"] for r in _rows(built / "manifest.jsonl")]
    assert all("text" not in r for r in untexted)


@needs_data
def test_same_seed_same_bytes_other_seed_other_images(built: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    build_fashion_mnist(again, seed=0, size=SIZE)
    build_fashion_mnist(other, seed=1, size=SIZE)
    for name in ("manifest.jsonl", "classification.jsonl", "dataset.json"):
        assert (again / name).read_bytes() == (built / name).read_bytes()
    for row in _rows(built / "manifest.jsonl"):
        assert (again / row["image"]).read_bytes() == (built / row["image"]).read_bytes()
    first = {r["source_index"] for r in _rows(built / "manifest.jsonl")}
    second = {r["source_index"] for r in _rows(other / "manifest.jsonl")}
    assert first != second


def test_missing_files_name_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="dataset-fashion-mnist"):
        build_fashion_mnist(tmp_path / "out", size=10, root=tmp_path / "nowhere")


def test_truncated_idx_is_a_corrupt_input(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2])))
    with pytest.raises(CorruptInputError, match="header"):
        read_idx(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptInputError):
        read_idx(path)
