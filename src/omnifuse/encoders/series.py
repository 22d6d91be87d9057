"""Encoders of time series (sensor tracks): a 1-D CNN and a small Transformer, both trainable.

Both read a series through :func:`omnifuse.io.load_series` (``.npy``/``.npz``/``.csv`` or inline
values, checked for ragged rows, NaN, wrong dtypes and absurd lengths), resample it to ``rate``
when the input says it was sampled at another rate, and standardise each channel with the
training set's mean and standard deviation. Those statistics are options (``mean``, ``std``,
``channels``) that :meth:`SeriesEncoder.fit_options` computes from the training split, so they are
saved with the model and part of the cache fingerprint; an encoder built without them leaves
values as they are (``normalise="channel"``) or standardises each series on its own
(``normalise="sample"``, which drops absolute levels).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.errors import ConfigError, InputError, InvalidValueError
from omnifuse.io import DecodeLimits, Series, load_series, resample_series
from omnifuse.nn import ConvBlock, masked_mean
from omnifuse.types import Encoded

NORMALISATIONS = ("channel", "sample", "none")
FIT_SAMPLES = 5000
"""At most this many training series (evenly spaced) are read to fit the channel statistics."""


class SeriesEncoder(Encoder):
    """Shared input handling of the series encoders (see the module docstring)."""

    modality = "series"
    trainable = True

    def __init__(
        self,
        *,
        channels: int | None = None,
        rate: float | None = None,
        normalise: str = "channel",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        max_steps: int = 100_000,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if normalise not in NORMALISATIONS:
            raise ConfigError(f"normalise must be one of {NORMALISATIONS}, not {normalise!r}")
        if rate is not None and not rate > 0:
            raise ConfigError(f"rate must be positive, got {rate}")
        if (mean is None) != (std is None):
            raise ConfigError("give mean and std together (or neither)")
        self.channels = channels
        self.rate = rate
        self.normalise = normalise
        self.limits = DecodeLimits(max_series_steps=max_steps)
        self.stats = None if mean is None else _stats(mean, std, channels)
        if channels is None and self.stats is not None:
            self.channels = len(self.stats[0])

    @classmethod
    def fit_options(cls, raws: Sequence[Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """``channels`` (the most common count, unless given) and per-channel ``mean``/``std`` of
        the training series (after resampling to ``rate``); unreadable series and series of
        another width are left out here and reported when encoded."""
        if "mean" in options or options.get("normalise", "channel") != "channel" or not raws:
            return {}
        rate = options.get("rate")
        limits = DecodeLimits(max_series_steps=int(options.get("max_steps", 100_000)))
        picks = np.unique(np.linspace(0, len(raws) - 1, min(len(raws), FIT_SAMPLES)).astype(int))
        arrays = []
        for i in picks:
            try:
                arrays.append(_at_rate(load_series(raws[i], limits=limits), rate))
            except InputError:
                continue  # reported, with the item's name, when the column is encoded
        if not arrays:
            raise ConfigError("no readable training series to fit the channel statistics on")
        widths = Counter(a.shape[1] for a in arrays)
        width = options.get("channels") or widths.most_common(1)[0][0]
        arrays = [a for a in arrays if a.shape[1] == width]  # others fail when encoded
        if not arrays:
            raise ConfigError(f"no training series has the {width} channels asked for")
        stacked = np.concatenate(arrays).astype(np.float64)
        std = stacked.std(axis=0)
        return {
            "channels": int(stacked.shape[1]),
            "mean": [round(float(v), 6) for v in stacked.mean(axis=0)],
            "std": [round(float(v), 6) if v > 1e-8 else 1.0 for v in std],
        }

    def preprocess(self, raw: Any) -> torch.Tensor:
        """Decode, check the channel count, resample to ``rate`` and standardise: (T, C)."""
        series = load_series(raw, limits=self.limits)
        if self.channels is not None and series.channels != self.channels:
            raise InvalidValueError(
                f"has {series.channels} channel(s); this encoder was set up for {self.channels}",
                modality="series",
            )
        values = _at_rate(series, self.rate)
        if values.shape[0] > self.limits.max_series_steps:
            raise InvalidValueError(
                f"resampled to {values.shape[0]} steps, over {self.limits.max_series_steps}",
                modality="series",
            )
        if self.normalise == "sample":
            values = (values - values.mean(axis=0)) / np.maximum(values.std(axis=0), 1e-6)
        elif self.normalise == "channel" and self.stats is not None:
            values = (values - self.stats[0]) / self.stats[1]
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def _check_width(self) -> int:
        if self.channels is None:
            raise ConfigError(
                f"{type(self).__name__} needs `channels` (or mean/std, which fit_options gives)"
            )
        return self.channels


@encoders.register("series-cnn")
class SeriesCNNEncoder(SeriesEncoder):
    """1-D CNN over time: one block per entry of ``strides`` (default 1, 2: a token per two
    steps), ``dim`` channels, masked so padding never changes a series' tokens.

    Options: ``channels``, ``rate``, ``normalise``, ``mean``/``std`` (see the module), ``dim``
    (64), ``strides`` ([1, 2]), ``dropout`` (0.1), ``max_steps`` (100 000).
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        strides: Sequence[int] = (1, 2),
        dropout: float = 0.1,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if dim < 1 or not strides or any(s < 1 for s in strides):
            raise ConfigError(f"series-cnn needs dim ≥ 1 and strides ≥ 1, got {dim}, {strides}")
        self.dim = dim
        widths = (self._check_width(), *(dim for _ in strides))
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], int(s), dropout) for i, s in enumerate(strides)
        )
        self.finish_setup()

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]
        x = batch["inputs"].transpose(1, 2) * mask.unsqueeze(1).to(batch["inputs"].dtype)
        for block in self.blocks:
            x, mask = block(x, mask)
        tokens = x.transpose(1, 2)
        return Encoded(tokens, mask, masked_mean(tokens, mask))


@encoders.register("series-transformer")
class SeriesTransformerEncoder(SeriesEncoder):
    """A small Transformer over patches of ``patch`` steps, with sinusoidal positions and a key
    padding mask, so a series gives the same tokens alone or in a padded batch.

    Options: ``channels``, ``rate``, ``normalise``, ``mean``/``std`` (see the module), ``dim``
    (64), ``layers`` (2), ``heads`` (4), ``patch`` (steps per token, 4), ``dropout`` (0.1),
    ``max_steps``.
    """

    def __init__(
        self,
        *,
        dim: int = 64,
        layers: int = 2,
        heads: int = 4,
        patch: int = 4,
        dropout: float = 0.1,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if dim < 1 or layers < 1 or heads < 1 or dim % heads or patch < 1:
            raise ConfigError(
                f"series-transformer needs dim divisible by heads and layers, patch ≥ 1; got "
                f"dim={dim}, heads={heads}, layers={layers}, patch={patch}"
            )
        self.dim = dim
        self.patch = patch
        self.embed = nn.Linear(self._check_width() * patch, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """(T, C) → (ceil(T / patch), patch·C): the tail patch is zero-filled."""
        values = super().preprocess(raw)
        extra = -values.shape[0] % self.patch
        values = nn.functional.pad(values, (0, 0, 0, extra))
        return values.reshape(-1, self.patch * values.shape[1])

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]
        x = self.embed(batch["inputs"]) + _positions(mask.shape[1], self.dim, mask.device)
        x = self.norm(self.layers(x, src_key_padding_mask=~mask))
        tokens = x * mask.unsqueeze(-1).to(x.dtype)
        return Encoded(tokens, mask, masked_mean(tokens, mask))


def _at_rate(series: Series, rate: float | None) -> np.ndarray:
    if rate is None or series.rate is None:
        return series.values
    return resample_series(series.values, series.rate, float(rate))


def _stats(
    mean: Sequence[float], std: Sequence[float] | None, channels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    if m.ndim != 1 or m.shape != s.shape or (channels is not None and len(m) != channels):
        raise ConfigError(f"mean and std need one value per channel; got {len(m)} and {len(s)}")
    if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ConfigError("mean must be finite and std finite and positive")
    return m, s


def _positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encodings (1, length, dim), as in "Attention Is All You Need"."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim)
    )
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table[None]
