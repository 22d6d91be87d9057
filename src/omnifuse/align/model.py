"""An aligned model: one projection head per modality into a shared space, and its folder.

The folder is ``config.json`` (format tag, the shared dimension, and per modality the manifest
column it was trained on, the frozen encoder's registry entry and the head's shape, plus the
training config) + ``model.safetensors`` (heads and logit scales) + ``metrics.json``. The
encoders are not saved: they are frozen pretrained (or seeded) encoders that are rebuilt from
their entries, on first use of their modality, so loading is cheap and a text-only caller never
loads the audio encoder.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.align.heads import HeadSpec, ProjectionHead
from omnifuse.align.loss import LogitScale
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, MissingModalityError
from omnifuse.fileio import FolderFormat, cpu_state, json_ready
from omnifuse.models.encoders import build_encoder
from omnifuse.types import Encoded


class InvalidAlignedModelError(ConfigError):
    """A folder that is not a loadable aligned model: files missing, config or weights wrong."""


ALIGNED_FOLDER = FolderFormat("omnifuse-aligned", "aligned model", InvalidAlignedModelError)


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of the model: its training column, frozen encoder entry and head shape."""

    column: str
    encoder: dict[str, Any]
    head: HeadSpec

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "encoder": dict(self.encoder), "head": asdict(self.head)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModalitySpec:
        return cls(str(data["column"]), dict(data["encoder"]), HeadSpec(**data["head"]))


def scale_key(a: str, b: str) -> str:
    """The name of the logit scale of the pair of columns ``a``, ``b``."""
    return f"{a}|{b}"


class AlignedModel(nn.Module):
    """Heads of every aligned modality; :meth:`embed` maps raw inputs to unit vectors."""

    def __init__(
        self,
        specs: Mapping[str, ModalitySpec],
        scales: Sequence[str] = (),
        *,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        dims = {spec.head.dim for spec in specs.values()}
        if len(dims) != 1:
            raise ConfigError(f"every head must project to one dimension, got {sorted(dims)}")
        self.specs = dict(specs)
        self.heads = nn.ModuleDict({m: ProjectionHead(s.head) for m, s in self.specs.items()})
        self.scales = nn.ModuleDict(
            {k: LogitScale(temperature, learnable=learn_temperature) for k in scales}
        )
        self.device = torch.device(device)
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()
        self.to(self.device)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.specs)

    @property
    def dim(self) -> int:
        return next(iter(self.specs.values())).head.dim

    def modality_of(self, column: str) -> str:
        """The modality whose head was trained on manifest column ``column``."""
        for modality, spec in self.specs.items():
            if spec.column == column:
                return modality
        raise ConfigError(f"no head was trained on column {column!r}")

    def head_for(self, modality: str) -> ProjectionHead:
        if modality not in self.heads:
            raise MissingModalityError(
                f"this aligned model embeds {', '.join(self.modalities)}; not {modality!r}",
                modality=modality,
            )
        head = self.heads[modality]
        assert isinstance(head, ProjectionHead)
        return head

    def project(
        self,
        modality: str,
        pooled: torch.Tensor,
        tokens: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encoder features of ``modality`` (tokens prepared by the head's ``prepare_tokens``) →
        (B, dim) unit vectors; gradients as the caller's."""
        head = self.head_for(modality)
        return head(
            pooled.to(self.device),
            None if tokens is None else tokens.to(self.device),
            None if mask is None else mask.to(self.device),
        )

    def encoder(self, modality: str) -> Encoder:
        """The frozen encoder of ``modality``, built on first use (thread-safe) and in eval mode,
        as the feature cache ran it (batch norm on its running statistics, no dropout)."""
        self.head_for(modality)
        with self._lock:
            if modality not in self._encoders:
                encoder = build_encoder(self.specs[modality].encoder, device=self.device)
                self._encoders[modality] = encoder.eval().requires_grad_(False)
            return self._encoders[modality]

    def embed_encoded(self, modality: str, encoded: Encoded) -> np.ndarray:
        """An encoder's output → float32 (N, dim) unit rows."""
        tokens, mask = self.head_for(modality).prepare_tokens(encoded.tokens, encoded.mask)
        return self.embed_features(modality, encoded.pooled, tokens, mask)

    def embed_features(
        self,
        modality: str,
        pooled: torch.Tensor,
        tokens: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Encoder features (pooled, and prepared tokens + mask for attention heads) → float32
        (N, dim) unit rows, computed in eval mode without gradients."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self.project(modality, pooled, tokens, mask)
        finally:
            self.train(was_training)
        return np.ascontiguousarray(out.float().cpu().numpy())

    def embed(self, modality: str, raws: Sequence[Any], *, batch_size: int = 32) -> np.ndarray:
        """Raw inputs of ``modality`` (text, image or audio as the encoders accept them: str,
        path, PIL image, (wave, sample_rate), bytes) → float32 (N, dim), L2-normalised rows.

        Bad inputs raise the encoder's :class:`~omnifuse.errors.InputError`; an empty list
        gives an empty (0, dim) array.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        encoder = self.encoder(modality)
        items = list(raws)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            parts.append(self.embed_encoded(modality, encoder.encode(chunk, batch_size=batch_size)))
        return np.concatenate(parts)

    def logit_scale(self, key: str) -> float:
        return float(self.scales[key]().detach())

    def folder_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``config.json`` holds besides the format tag and version."""
        return {
            "dim": self.dim,
            "modalities": {m: s.to_dict() for m, s in self.specs.items()},
            "scales": list(self.scales),
            **dict(extra or {}),
        }


def save_aligned(
    model: AlignedModel,
    folder: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model folder (files replaced atomically); ``extra`` goes into config.json."""
    config = json_ready(model.folder_config(extra))
    return ALIGNED_FOLDER.write(folder, cpu_state(model), config, metrics or {})


def read_aligned_config(folder: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of an aligned model folder."""
    return ALIGNED_FOLDER.read_config(folder)


def load_aligned(folder: str | Path, *, device: str | torch.device = "cpu") -> AlignedModel:
    """Rebuild an aligned model from its folder, in eval mode; encoders load on first use."""
    data = read_aligned_config(folder)
    try:
        specs = {str(m): ModalitySpec.from_dict(s) for m, s in data["modalities"].items()}
        model = AlignedModel(specs, [str(k) for k in data.get("scales", [])], device=device)
    except (KeyError, TypeError, ConfigError) as err:
        config_file = Path(folder) / ALIGNED_FOLDER.config_file
        raise InvalidAlignedModelError(f"{config_file}: {err}") from None
    ALIGNED_FOLDER.load_weights(model, folder)
    return model.eval()


def read_metrics(folder: str | Path) -> dict[str, Any]:
    return ALIGNED_FOLDER.read_metrics(folder)
