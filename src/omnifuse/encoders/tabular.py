"""Tables: one token per column (FT-Transformer's feature tokenizer), trainable.

Gorishniy et al. (2021, "Revisiting Deep Learning Models for Tabular Data") embed each field on
its own: a numeric value ``x`` becomes ``b_i + x·w_i``, a category ``c`` becomes ``b_j + E_j[c]``,
so token-level fusions can attend to single fields (the blood pressure, not the whole record).
Here numeric values are standardised with the training set's mean and standard deviation first; a
missing numeric value becomes a learned *missing* vector of its column instead of an imputed
number, so "not measured" stays visible. Categories seen in training get their own embedding;
a missing one and one never seen in training get two reserved ones, so a new category is an
ordinary input, not an error. ``layers`` > 0 adds Transformer layers over the field tokens.

Records come from :func:`omnifuse.io.load_record`; :meth:`TabularEncoder.fit_options` computes the
statistics and category lists from the training split (the data path calls it and saves them in
the encoder's options).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.errors import ConfigError, InputError
from omnifuse.io import Record, load_record
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded

MISSING_INDEX, UNSEEN_INDEX, RESERVED = 0, 1, 2


@encoders.register("tabular")
class TabularEncoder(Encoder):
    """Field tokens of a table record (see the module docstring).

    Options: ``numeric`` and ``categorical`` (column names; the manifest schema's ``tables``
    entry fills them), ``mean``/``std`` (one per numeric column) and ``categories`` (column →
    known values), fitted on the training split; ``dim`` (64), ``layers`` (0), ``heads`` (4),
    ``dropout`` (0.1), ``max_categories`` (most frequent values kept per column, 100).
    """

    modality = "tabular"
    trainable = True
    mean: torch.Tensor
    std: torch.Tensor
    offsets: torch.Tensor

    def __init__(
        self,
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
        dim: int = 64,
        layers: int = 0,
        heads: int = 4,
        dropout: float = 0.1,
        max_categories: int = 100,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        self.numeric, self.categorical = list(numeric), list(categorical)
        if not self.numeric and not self.categorical:
            raise ConfigError("the tabular encoder needs `numeric` and/or `categorical` columns")
        if dim < 1 or layers < 0 or (layers and dim % heads):
            raise ConfigError(f"tabular needs dim ≥ 1 divisible by heads; got {dim}, {heads}")
        self.dim = dim
        self.max_categories = max_categories
        n = len(self.numeric)
        self.register_buffer("mean", _vector(mean, n, 0.0, "mean"))
        self.register_buffer("std", _vector(std, n, 1.0, "std"))
        if not bool((self.std > 0).all()):
            raise ConfigError("std must be positive")
        known = categories or {}
        self.vocab = [
            {value: RESERVED + i for i, value in enumerate(known.get(c, []))}
            for c in self.categorical
        ]
        self.weight = nn.Parameter(torch.randn(n, dim) * dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(n + len(self.categorical), dim))
        self.missing = nn.Parameter(torch.randn(n, dim) * dim**-0.5)
        sizes = [RESERVED + len(v) for v in self.vocab]
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0))
        self.embed = nn.Embedding(sum(sizes), dim) if sizes else None
        self.layers = None
        if layers:
            layer = nn.TransformerEncoderLayer(
                dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True
            )
            self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.finish_setup()

    @classmethod
    def fit_options(cls, raws: Sequence[Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """Mean and standard deviation of each numeric column over its present values, and the
        ``max_categories`` most frequent values of each categorical column."""
        numeric = list(options.get("numeric", []))
        categorical = list(options.get("categorical", []))
        if "mean" in options or not raws:
            return {}
        records = []
        for raw in raws:
            try:
                records.append(load_record(raw, numeric, categorical))
            except InputError:
                continue  # reported, with the item's name, when the column is encoded
        fitted: dict[str, Any] = {"mean": [], "std": []}
        for column in numeric:
            values = torch.tensor(
                [r.numbers[column] for r in records if r.numbers[column] is not None],
                dtype=torch.float64,
            )
            mean = float(values.mean()) if len(values) else 0.0
            std = float(values.std(unbiased=False)) if len(values) > 1 else 1.0
            fitted["mean"].append(round(mean, 6))
            fitted["std"].append(round(std, 6) if std > 1e-8 else 1.0)
        limit = int(options.get("max_categories", 100))
        fitted["categories"] = {
            column: _most_frequent([r.categories[column] for r in records], limit)
            for column in categorical
        }
        return fitted

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        record = load_record(raw, self.numeric, self.categorical)
        return self.fields(record)

    def fields(self, record: Record) -> dict[str, torch.Tensor]:
        """Standardised numbers, their presence, and category indices (0 missing, 1 unseen)."""
        present = torch.tensor([record.numbers[c] is not None for c in self.numeric])
        values = torch.tensor([record.numbers[c] or 0.0 for c in self.numeric], dtype=torch.float32)
        values = torch.where(present, (values - self.mean.cpu()) / self.std.cpu(), 0.0)
        codes = [
            MISSING_INDEX
            if (value := record.categories[c]) is None
            else vocab.get(value, UNSEEN_INDEX)
            for c, vocab in zip(self.categorical, self.vocab, strict=True)
        ]
        return {
            "values": values,
            "present": present,
            "codes": torch.tensor(codes, dtype=torch.long),
        }

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        parts = []
        if self.numeric:
            values, present = batch["values"].unsqueeze(-1), batch["present"].unsqueeze(-1)
            parts.append(torch.where(present, values * self.weight, self.missing))
        if self.embed is not None:
            parts.append(self.embed(batch["codes"] + self.offsets))
        tokens = torch.cat(parts, dim=1) + self.bias
        if self.layers is not None:
            tokens = self.layers(tokens)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return Encoded(tokens, mask, masked_mean(tokens, mask))


def _vector(values: Sequence[float] | None, n: int, default: float, name: str) -> torch.Tensor:
    if values is None:
        return torch.full((n,), default)
    if len(values) != n:
        raise ConfigError(f"{name} needs one value per numeric column ({n}), got {len(values)}")
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def _most_frequent(values: list[str | None], limit: int) -> list[str]:
    counts = Counter(v for v in values if v is not None)
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
