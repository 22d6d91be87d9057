"""What ``/v1/embeddings`` and ``/v1/search`` run: an encoder, or the aligned model.

An :class:`Embedder` splits its work in two so the server can batch across requests:
``prepare`` (decode-side CPU work for one input, on a request's thread) and ``run`` (one
forward pass over a batch of prepared inputs of one modality, on the batcher's thread).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from omnifuse.encoders.base import Encoder


class Embedder(Protocol):
    """One embedding model: the modalities it reads and the size of its vectors."""

    id: str
    modalities: tuple[str, ...]
    dim: int
    kind: str

    def prepare(self, modality: str, raw: Any) -> Any: ...

    def run(self, modality: str, items: list[Any]) -> np.ndarray: ...


class EncoderEmbedder:
    """A pretrained encoder's pooled vectors (what ``Encoder.encode(...).pooled`` gives)."""

    kind = "encoder"

    def __init__(self, name: str, encoder: Encoder) -> None:
        self.id = name
        self.encoder = encoder
        self.modalities: tuple[str, ...] = (encoder.modality,)
        self.dim = int(encoder.dim)

    def prepare(self, modality: str, raw: Any) -> Any:
        return self.encoder.preprocess(raw)

    def run(self, modality: str, items: list[Any]) -> np.ndarray:
        with torch.inference_mode():
            pooled = self.encoder.run_batch(self.encoder.collate(items)).pooled
        return pooled.float().cpu().numpy()  # (B, D)


class AlignedEmbedder:
    """An aligned model: every modality it was trained on, in one L2-normalised space.

    The same computation as ``AlignedModel.embed``, split at the encoder's preprocessing so
    inputs from concurrent requests share one encoder pass and one projection.
    """

    kind = "aligned"

    def __init__(self, name: str, model: Any) -> None:
        self.id = name
        self.model = model
        self.modalities: tuple[str, ...] = tuple(model.modalities)
        self.dim = int(model.dim)

    def prepare(self, modality: str, raw: Any) -> Any:
        return self.model.encoder(modality).preprocess(raw)

    def run(self, modality: str, items: list[Any]) -> np.ndarray:
        encoder = self.model.encoder(modality)
        with torch.inference_mode():
            encoded = encoder.run_batch(encoder.collate(items))
            vectors = self.model.embed_encoded(modality, encoded)
        return np.asarray(vectors, dtype=np.float32)
