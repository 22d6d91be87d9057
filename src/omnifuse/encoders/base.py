"""The encoder contract: one modality in, :class:`~omnifuse.types.Encoded` out.

``preprocess`` turns one raw input into model inputs on the CPU (decoding through
:mod:`omnifuse.io`), ``collate`` pads a list of those into a batch, and ``forward`` runs the
network. Keeping the three apart lets the feature cache store preprocessed or encoded items and
lets a server batch requests that were decoded one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.registry import Registry
from omnifuse.types import Encoded, pad_tokens

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; asking for absent CUDA fails clearly."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return resolved


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"unsupported dtype {dtype}; use fp32 or bf16")
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ConfigError(f"unsupported dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def move_batch(batch: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move tensors of a (nested) batch to ``device``; floating tensors also take ``dtype``."""
    if isinstance(batch, torch.Tensor):
        if batch.is_floating_point():
            return batch.to(device=device, dtype=dtype)
        return batch.to(device=device)
    if isinstance(batch, dict):
        return {key: move_batch(value, device, dtype) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(value, device, dtype) for value in batch)
    return batch


def concat_encoded(parts: Sequence[Encoded]) -> Encoded:
    """Join batches whose token counts may differ, padding to the longest."""
    if len(parts) == 1:
        return parts[0]
    longest = max(int(p.tokens.shape[1]) for p in parts)
    tokens, masks = [], []
    for part in parts:
        extra = longest - int(part.tokens.shape[1])
        tokens.append(nn.functional.pad(part.tokens, (0, 0, 0, extra)))
        masks.append(nn.functional.pad(part.mask, (0, extra), value=False))
    return Encoded(torch.cat(tokens), torch.cat(masks), torch.cat([p.pooled for p in parts]))


class Encoder(nn.Module):
    """Base class of every encoder. Subclasses set ``modality``, ``dim`` and ``trainable``.

    ``dtype`` is the compute dtype: frozen pretrained encoders cast their weights to it (bf16 is
    about 3× faster on CPUs with AVX-512 BF16); outputs are always returned as float32.
    """

    modality: str = ""
    trainable: bool = False

    def __init__(self, *, device: str | torch.device = "cpu", dtype: str | torch.dtype = "fp32"):
        super().__init__()
        self.device = resolve_device(device)
        self.compute_dtype = resolve_dtype(dtype)
        self.dim = 0

    @classmethod
    def fit_options(cls, raws: Sequence[Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """Options learned from training inputs (normalisation statistics, category lists) that
        the data path merges into the encoder's config before building it, so they are saved
        with a model and a cache fingerprint like any option. None by default."""
        return {}

    def preprocess(self, raw: Any) -> Any:
        """One raw input → model inputs on the CPU. Raises :class:`InputError` on bad input."""
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        """Preprocessed items → one batch. The default pads (T, F) tensors into (B, T, F) + mask."""
        tokens, mask = pad_tokens([torch.as_tensor(item) for item in items])
        return {"inputs": tokens, "mask": mask}

    def forward(self, batch: Any) -> Encoded:
        raise NotImplementedError

    def finish_setup(self) -> None:
        """Call at the end of a subclass ``__init__``: places weights on the device and dtype."""
        self.to(self.device)
        if not self.trainable:
            self.to(self.compute_dtype)
            self.eval()
            self.requires_grad_(False)

    def encode(self, raws: Sequence[Any], *, batch_size: int = 32) -> Encoded:
        """Preprocess, batch and run ``raws``; float32 outputs on the CPU.

        Gradients are kept only when the encoder is trainable and in training mode, so frozen
        feature extraction never builds an autograd graph.
        """
        if not raws:
            raise ValueError("encode() needs at least one input")
        grad = self.trainable and self.training
        parts: list[Encoded] = []
        with torch.set_grad_enabled(grad):
            for start in range(0, len(raws), batch_size):
                items = [self.preprocess(raw) for raw in raws[start : start + batch_size]]
                parts.append(self.run_batch(self.collate(items)))
        out = concat_encoded(parts)
        return out if grad else out.to("cpu", torch.float32)

    def run_batch(self, batch: Any) -> Encoded:
        """Forward one collated batch on the encoder's device and dtype; float32 results."""
        batch = move_batch(batch, self.device, self.compute_dtype)
        autocast = self.trainable and self.compute_dtype == torch.bfloat16
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = self(batch)
        return Encoded(out.tokens.float(), out.mask, out.pooled.float())

    def extra_repr(self) -> str:
        dtype = next(k for k, v in DTYPES.items() if v == self.compute_dtype)
        return (
            f"modality={self.modality}, dim={self.dim}, trainable={self.trainable}, dtype={dtype}"
        )


encoders: Registry[Encoder] = Registry(
    "encoder",
    builtin_modules=(
        "omnifuse.encoders.text",
        "omnifuse.encoders.text_trainable",
        "omnifuse.encoders.image",
        "omnifuse.encoders.image_trainable",
        "omnifuse.encoders.audio",
        "omnifuse.encoders.audio_trainable",
        "omnifuse.encoders.video",
        "omnifuse.encoders.sentiment",
        "omnifuse.encoders.prosody",
        "omnifuse.encoders.series",
        "omnifuse.encoders.tabular",
    ),
)
