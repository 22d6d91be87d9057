"""Short summaries of a built dataset: counts per split and modality, label variety, examples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import SPLITS, DatasetInfo


@dataclass
class ManifestSummary:
    """What one manifest holds. ``modalities`` maps a column to (kind, samples that have it)."""

    dataset: str
    task: str
    samples: int
    skipped: int
    splits: dict[str, int]
    modalities: dict[str, tuple[str, int]]
    labels: dict[str, int]  # label column -> number of distinct values
    examples: list[str] = field(default_factory=list)


def summarize_dataset(folder: str | Path, *, examples: int = 2) -> list[ManifestSummary]:
    """One summary per manifest listed in ``folder/dataset.json`` that holds samples (a build
    may leave one empty, e.g. world with ``video_clips=0``)."""
    folder = Path(folder)
    info = DatasetInfo.read(folder)
    return [
        summarize_manifest(folder / file, dataset=info.name, task=task, examples=examples)
        for task, file in info.manifests.items()
        if (folder / file).is_file() and (folder / file).stat().st_size > 0
    ]


def summarize_manifest(
    path: Path, *, dataset: str = "", task: str = "", examples: int = 2
) -> ManifestSummary:
    manifest = load_manifest(path)
    schema = manifest.schema
    counts = manifest.split_counts()
    ordered = {s: counts[s] for s in SPLITS if s in counts}
    ordered.update({s: n for s, n in counts.items() if s not in ordered})
    modalities = {
        column: (kind, sum(1 for s in manifest.samples if column in s))
        for column, kind in schema.modalities.items()
    }
    labels = {
        column: len(Counter(str(s.get(column)) for s in manifest.samples))
        for column in schema.labels
    }
    text_columns = [c for c, kind in schema.modalities.items() if kind == "text"]
    picked: list[str] = []
    for sample in manifest.samples[: max(examples, 0) * 7 : 7]:
        parts = [str(sample[c]) for c in text_columns if c in sample]
        parts += [f"→ {sample[c]}" for c in schema.labels if c in sample]
        if parts:
            picked.append(" ".join(parts))
    return ManifestSummary(
        dataset=dataset or path.parent.name,
        task=task or path.stem,
        samples=len(manifest),
        skipped=manifest.skipped_lines,
        splits=ordered,
        modalities=modalities,
        labels=labels,
        examples=picked,
    )
