"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, with class names as text.

Real 28×28 grayscale photos of clothing in ten classes, for contrastive image-text alignment and
zero-shot classification. ``size`` images are drawn, balanced over the classes: train and val
from the package's training file (disjointly), test from its t10k file (70/15/15). Two manifests
share the rows: ``manifest.jsonl`` pairs each image with a caption ("a photo of a sneaker") for
alignment; ``classification.jsonl`` has no caption, so the text cannot leak the label.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data._common import child_rng, require_files, split_counts, write_gray_png
from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, write_manifest
from omnifuse.errors import ConfigError, CorruptInputError
from omnifuse.progress import track

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SOURCE_OF_SPLIT = {"train": "train", "val": "train", "test": "t10k"}
ALIGNMENT_SCHEMA = ManifestSchema(
    modalities={"image": "image", "text": "text"},
    labels=["label"],
    extra=["label_id", "source", "source_index"],
)
CLASSIFICATION_SCHEMA = ManifestSchema(
    modalities={"image": "image"}, labels=["label"], extra=["label_id", "source", "source_index"]
)
_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Decode a gzipped idx file (the MNIST format: magic, big-endian dims, then the data)."""
    try:
        data = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError) as exc:
        raise CorruptInputError(f"not a readable gzip file: {exc}", source=path) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise CorruptInputError("not an unsigned-byte idx file", source=path)
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    if len(shape) != ndim or len(data) != header + int(np.prod(shape)):
        raise CorruptInputError(f"idx data does not match its header shape {shape}", source=path)
    return np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=header).reshape(shape)


def load_fashion_mnist(root: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` uint8 and labels ``[N]`` of one source file pair (train or t10k)."""
    image_file, label_file = (root / name for name in FILES[source])
    require_files([image_file, label_file], "Fashion-MNIST data", apt="dataset-fashion-mnist")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CorruptInputError(
            f"images {images.shape} and labels {labels.shape} disagree", source=root
        )
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise CorruptInputError(
            f"label {int(labels.max())} is not a Fashion-MNIST class", source=root
        )
    return images, labels


def caption(class_name: str) -> str:
    """A short caption from a class name: "T-shirt/top" -> "a photo of a t-shirt or top"."""
    noun = class_name.lower().replace("/", " or ")
    article = "an" if noun[0] in "aeiou" else "a"
    return f"a photo of {article} {noun}"


def class_counts(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` items spread over the classes as evenly as possible; random classes get the extras."""
    counts = np.full(len(CLASS_NAMES), n // len(CLASS_NAMES))
    counts[rng.choice(len(CLASS_NAMES), size=n % len(CLASS_NAMES), replace=False)] += 1
    return counts


def choose_indices(
    labels: np.ndarray, wanted: dict[str, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Disjoint, class-balanced index sets of one source file, one per split in ``wanted``."""
    per_split = {split: class_counts(n, rng) for split, n in wanted.items()}
    chosen: dict[str, list[int]] = {split: [] for split in wanted}
    for label in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == label)
        need = sum(int(counts[label]) for counts in per_split.values())
        if need > len(members):
            raise ConfigError(
                f"asked for {need} {CLASS_NAMES[label]!r} images, have {len(members)}"
            )
        picked = rng.choice(members, size=need, replace=False).tolist()
        for split, counts in per_split.items():
            chosen[split] += picked[: counts[label]]
            picked = picked[counts[label] :]
    return {split: rng.permutation(np.array(idx, dtype=np.int64)) for split, idx in chosen.items()}


def _row(index: int, split: str, source_index: int, label_id: int) -> dict[str, Any]:
    sample_id = f"fmnist-{index:05d}"
    return {
        "id": sample_id,
        "split": split,
        "image": f"images/{sample_id}.png",
        "label": CLASS_NAMES[label_id],
        "label_id": label_id,
        "text": caption(CLASS_NAMES[label_id]),
        "source": SOURCE_OF_SPLIT[split],
        "source_index": source_index,
    }


@datasets.register("fashion-mnist")
def build_fashion_mnist(
    out: Path, *, seed: int = 0, size: int = 100, root: Path | None = None
) -> DatasetInfo:
    """Real Fashion-MNIST images with class names and captions (Debian dataset-fashion-mnist)."""
    if size < 1:
        raise ConfigError(f"fashion-mnist size must be positive, got {size}")
    out, root = Path(out), Path(root or DEFAULT_ROOT)
    counts = split_counts(size)
    rng = child_rng(seed)
    rows: list[dict[str, Any]] = []
    for source in FILES:
        images, labels = load_fashion_mnist(root, source)
        wanted = {split: n for split, n in counts.items() if SOURCE_OF_SPLIT[split] == source}
        for split, indices in choose_indices(labels, wanted, rng).items():
            for source_index in track(indices.tolist(), f"fashion-mnist {split}"):
                row = _row(len(rows), split, source_index, int(labels[source_index]))
                write_gray_png(out / row["image"], images[source_index])
                rows.append(row)
    write_manifest(out / "manifest.jsonl", rows, ALIGNMENT_SCHEMA)
    untexted = [{k: v for k, v in row.items() if k != "text"} for row in rows]
    write_manifest(out / "classification.jsonl", untexted, CLASSIFICATION_SCHEMA)
    info = DatasetInfo(
        name="fashion-mnist",
        seed=seed,
        size=size,
        manifests={"alignment": "manifest.jsonl", "classification": "classification.jsonl"},
        description=__doc__.strip().splitlines()[0] if __doc__ else "",
        params={"classes": list(CLASS_NAMES), "splits": counts, "image_size": [28, 28]},
    )
    info.write(out)
    return info
