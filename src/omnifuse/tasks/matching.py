"""Caption–image matching as binary classification, and the pairs it trains on.

:func:`matching_pairs` turns samples that each hold a caption and its own image (the world's
``scenes.jsonl``) into two samples apiece: the caption with its own image (``match``) and the
caption with another scene's image (``mismatch``). Negatives come from the same split and, when
``distinct`` names a column, from a scene whose value there differs (so two scenes with the same
caption never make a false negative). The draw is deterministic for a seed.
:func:`write_matching_manifest` writes those pairs as a manifest, so the feature cache and the
trainer use them like any other dataset (each image is still encoded once: the cache is keyed by
content).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.errors import ConfigError
from omnifuse.tasks.base import Rows, Scores, Task, tasks
from omnifuse.tasks.classification import ClassificationTask
from omnifuse.tasks.metrics import roc_auc

MATCH_CLASSES = ("mismatch", "match")
_TRUE = {"match", "1", "true", "yes"}
_FALSE = {"mismatch", "0", "false", "no"}
NEGATIVE_TRIES = 64


@tasks.register("matching")
class MatchingTask(ClassificationTask):
    """Does this caption describe this image? Two classes, ``mismatch`` and ``match``.

    Targets may be booleans, 0/1 or the class names. Metrics: those of classification plus
    ``auc`` (ROC AUC of the match probability) and ``match_f1``.
    """

    name = "matching"

    def __init__(
        self, classes: Sequence[str] = MATCH_CLASSES, *, aux_weight: float = 0.5, **cfg: Any
    ) -> None:
        classes = tuple(classes) or MATCH_CLASSES
        if classes != MATCH_CLASSES:
            raise ConfigError(f"matching classes are fixed to {list(MATCH_CLASSES)}, got {classes}")
        super().__init__(classes, aux_weight=aux_weight, **cfg)

    @classmethod
    def infer_classes(cls, values: Any) -> list[str]:
        return list(MATCH_CLASSES)

    def class_index(self, value: Any) -> int:
        text = str(value).strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
        raise ConfigError(f"matching label {value!r} is not match/mismatch, true/false or 1/0")

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        out = super().metrics(logits, targets, samples)
        out["auc"] = roc_auc(targets, self.predict(logits)[:, 1])
        out["match_f1"] = out["per_class"]["match"]["f1"]
        return out


def matching_pairs(
    samples: Sequence[Mapping[str, Any]],
    *,
    swap: Sequence[str] = ("image",),
    distinct: str | None = "caption",
    target: str = "match",
    split: str | None = "split",
    id_column: str = "id",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Each sample as a ``match`` pair and a ``mismatch`` pair whose ``swap`` columns come from
    another sample of the same split. Ids get ``:match`` / ``:mismatch`` appended."""
    if not swap:
        raise ConfigError("matching_pairs needs at least one column to swap")
    rng = np.random.default_rng(seed)
    by_split: dict[Any, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        by_split[sample.get(split) if split else None].append(i)
    pairs: list[dict[str, Any]] = []
    for i, sample in enumerate(samples):
        name = str(sample.get(id_column, f"#{i + 1}"))
        pairs.append({**sample, id_column: f"{name}:match", target: "match"})
        other = _negative(
            samples, i, by_split[sample.get(split) if split else None], swap, distinct, rng
        )
        if other is None:
            continue
        negative = {**sample, id_column: f"{name}:mismatch", target: "mismatch"}
        negative.update({column: samples[other].get(column) for column in swap})
        pairs.append(negative)
    return pairs


def _negative(
    samples: Sequence[Mapping[str, Any]],
    anchor: int,
    pool: list[int],
    swap: Sequence[str],
    distinct: str | None,
    rng: np.random.Generator,
) -> int | None:
    """A random other sample of ``pool`` with different ``swap`` values (and ``distinct``)."""

    def usable(j: int) -> bool:
        if j == anchor or any(samples[j].get(c) == samples[anchor].get(c) for c in swap):
            return False
        return distinct is None or samples[j].get(distinct) != samples[anchor].get(distinct)

    for _ in range(NEGATIVE_TRIES):
        j = pool[int(rng.integers(len(pool)))]
        if usable(j):
            return j
    candidates = [j for j in pool if usable(j)]
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def write_matching_manifest(
    manifest: str | Path,
    out: str | Path,
    *,
    swap: Sequence[str] = ("image",),
    distinct: str | None = "caption",
    target: str = "match",
    seed: int = 0,
) -> Path:
    """Write the matching pairs of ``manifest`` as a new manifest (with schema) at ``out``."""
    source = load_manifest(manifest)
    schema = source.schema
    missing = [c for c in swap if c not in schema.modalities]
    if missing:
        raise ConfigError(f"columns {missing} are not modality columns of {source.path}")
    out = Path(out)
    media = [c for c, kind in schema.modalities.items() if kind != "text"]
    pairs = matching_pairs(
        source.samples,
        swap=swap,
        distinct=distinct,
        target=target,
        split=schema.split,
        id_column=schema.id or "id",
        seed=seed,
    )
    rows = [_relative(pair, media, out.parent) for pair in pairs]
    derived = ManifestSchema(
        modalities=dict(schema.modalities),
        labels=[target],
        split=schema.split,
        id=schema.id or "id",
        extra=[c for c in schema.extra if c != target],
    )
    write_manifest(out, rows, derived)
    return out


def _relative(sample: dict[str, Any], media: Sequence[str], root: Path) -> dict[str, Any]:
    row = dict(sample)
    for column in media:
        value = row.get(column)
        if isinstance(value, str) and value and os.path.isabs(value):
            row[column] = os.path.relpath(value, root)
    return row


__all__ = ["MATCH_CLASSES", "MatchingTask", "Task", "matching_pairs", "write_matching_manifest"]
