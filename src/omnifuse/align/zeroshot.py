"""Zero-shot classification: class names become text embeddings, inputs take the nearest class.

Each class is the mean of its prompts' embeddings (one prompt per template, e.g. "a photo of a
{}"), re-normalised — CLIP's prompt ensembling. An image (or a sound, with a model that binds
audio) is assigned the class whose text embedding has the highest cosine similarity, so classes
that no head ever saw during training can be recognised by their names alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from omnifuse.align.model import AlignedModel
from omnifuse.errors import ConfigError

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}",)


class ZeroShotClassifier:
    """Classify ``image`` (or any embedded modality) inputs among ``class_names`` by text.

    ``templates`` are format strings with one ``{}`` for the class name; ``text_modality`` is
    the modality the prompts are embedded as.
    """

    def __init__(
        self,
        model: AlignedModel,
        class_names: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        *,
        text_modality: str = "text",
    ) -> None:
        names = [str(n) for n in class_names]
        if len(names) < 2:
            raise ConfigError("zero-shot classification needs at least two class names")
        if len(set(names)) != len(names):
            raise ConfigError(f"class names repeat: {names}")
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ConfigError("every template needs exactly one '{}' for the class name")
        self.model = model
        self.class_names = names
        self.templates = tuple(templates)
        prompts = [t.format(name) for name in names for t in self.templates]
        embedded = model.embed(text_modality, prompts).reshape(len(names), len(self.templates), -1)
        means = embedded.mean(axis=1)
        self.class_embeddings = means / np.linalg.norm(means, axis=1, keepdims=True)  # (C, D)

    def scores(self, raws: Sequence[Any], modality: str = "image") -> np.ndarray:
        """(N, C) cosine similarities between each input and each class."""
        return np.asarray(self.model.embed(modality, raws) @ self.class_embeddings.T)

    def predict_indices(self, raws: Sequence[Any], modality: str = "image") -> np.ndarray:
        return np.asarray(self.scores(raws, modality).argmax(axis=1))

    def predict(self, raws: Sequence[Any], modality: str = "image") -> list[str]:
        """The class name predicted for each input."""
        return [self.class_names[i] for i in self.predict_indices(raws, modality)]

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Class indices for inputs already embedded by the model (N, dim)."""
        return np.asarray((embeddings @ self.class_embeddings.T).argmax(axis=1))
