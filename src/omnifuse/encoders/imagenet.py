"""ImageNet-1k class names and top-k labelling of classifier logits.

The names are the usual short human-readable ones (``tabby``, ``Egyptian cat``, ``espresso``),
one per line of the package file ``imagenet_classes.txt`` in class-index order, so that the
labels of an ImageNet classifier can be shown to people or handed to a language model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import torch

CLASS_NAMES_FILE = "imagenet_classes.txt"
NUM_CLASSES = 1000


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, indexed by class id."""
    text = resources.files(__package__).joinpath(CLASS_NAMES_FILE).read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"{CLASS_NAMES_FILE} holds {len(names)} names, expected {NUM_CLASSES}")
    return names


def top_k_labels(
    logits: torch.Tensor, k: int = 5, *, names: Sequence[str] | None = None
) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ``(name, probability)`` pairs of each row, most probable first.

    ``logits`` is (B, C); probabilities are its softmax over the C classes. ``names`` defaults
    to the ImageNet-1k names.
    """
    labels = imagenet_class_names() if names is None else names
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"logits of shape {tuple(logits.shape)} do not match {len(labels)} names")
    if not 1 <= k <= len(labels):
        raise ValueError(f"k must be between 1 and {len(labels)}, got {k}")
    probs = logits.detach().float().softmax(dim=-1)
    values, indices = probs.topk(k, dim=-1)  # (B, k)
    return [
        [(labels[i], p) for i, p in zip(row_idx, row_p, strict=True)]
        for row_idx, row_p in zip(indices.tolist(), values.tolist(), strict=True)
    ]
