"""A fusion model's fusion and head as a graph of plain tensors, the form ONNX takes.

Inputs, per column in the model's column order: ``{column}.tokens`` (B, T, D) and
``{column}.mask`` (B, T) when the fusion reads token sequences, and ``{column}.pooled`` (B, D);
then ``present`` (B, M), True where a column is given — missing modalities are an input of the
graph, as they are of the model. Outputs: ``logits`` (B, C), ``fused`` (B, F) and, where the
fusion reports them, ``weights`` (B, M). Batch size and token count are dynamic.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from omnifuse.models import FusionModel
from omnifuse.models.exported import GraphInputs, graph_inputs, input_names
from omnifuse.models.fusion_model import reads_tokens
from omnifuse.types import Encoded


class FusionGraph(nn.Module):
    """``model``'s fusion and head over flat tensors (see the module docstring)."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__()
        self.model = model
        self.columns = list(model.modalities)
        self.tokens = reads_tokens(model)
        probe = model(*random_features(model, batch=2, tokens=3))
        self.has_weights = probe.fusion.weights is not None

    @property
    def input_names(self) -> list[str]:
        return input_names(self.columns, self.tokens)

    @property
    def output_names(self) -> list[str]:
        return ["logits", "fused"] + (["weights"] if self.has_weights else [])

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features: dict[str, Encoded] = {}
        step = 3 if self.tokens else 1
        for index, column in enumerate(self.columns):
            parts = flat[index * step : (index + 1) * step]
            if self.tokens:
                features[column] = Encoded(parts[0], parts[1], parts[2])
            else:
                pooled = parts[0]
                mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
                features[column] = Encoded(pooled.unsqueeze(1), mask, pooled)
        out = self.model(features, flat[-1])
        extra = (out.fusion.weights,) if self.has_weights and out.fusion.weights is not None else ()
        return (out.logits, out.fusion.fused, *extra)

    def inputs(self, features: Mapping[str, Encoded], present: torch.Tensor) -> GraphInputs:
        """The graph's inputs for features and presence in the model's column order."""
        dims = {c: self.model.config.modalities[c] for c in self.columns}
        return graph_inputs(dims, self.tokens, features, present)


def token_cap(model: FusionModel) -> int | None:
    """The one token limit of the model's fusion (sequences longer are pooled down to it), or
    None when the fusion has none or several."""
    caps = {
        int(limit)
        for module in model.fusion.modules()
        if isinstance(limit := getattr(module, "max_tokens", None), int)
    }
    return caps.pop() if len(caps) == 1 else None


def random_features(
    model: FusionModel, *, batch: int, tokens: int, seed: int = 0
) -> tuple[dict[str, Encoded], torch.Tensor]:
    """Random features of the model's sizes, every column present, ragged token masks."""
    generator = torch.Generator().manual_seed(seed)
    features = {}
    for column in model.modalities:
        dim = model.config.modalities[column]
        values = torch.randn(batch, tokens, dim, generator=generator)
        lengths = torch.randint(1, tokens + 1, (batch,), generator=generator)
        mask = torch.arange(tokens)[None, :] < lengths[:, None]
        pooled = (values * mask[..., None]).sum(1) / lengths[:, None]
        features[column] = Encoded(values, mask, pooled)
    return features, torch.ones(batch, len(model.modalities), dtype=torch.bool)
