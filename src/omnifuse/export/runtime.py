"""A fusion model whose fusion and head run in onnxruntime (the folder's ``model.onnx``, fp32
or int8); the encoders, the presence mask, ``predict_raw`` and everything around the forward
pass are the torch model's, so ``omnifuse predict``, ``serve`` and the assistant take it as
they take any model folder (:func:`omnifuse.models.folder.load_model` returns one when the
folder holds an export)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from omnifuse.export.graph import graph_inputs
from omnifuse.export.onnx import ONNX_FILE, ExportInfo, cap_tokens, session
from omnifuse.fusion.base import FusionOutput
from omnifuse.models import FusionModel, ModelOutput
from omnifuse.types import Encoded


class OnnxFusionModel(FusionModel):
    """``model`` with its forward pass replaced by the exported graph."""

    def __init__(self, model: FusionModel, folder: Path, info: ExportInfo) -> None:
        encoders = {c: model.encoder(c) for c in model.encoders}
        super().__init__(model.config, model.fusion, model.head, model.task, encoders)
        self.info = info
        self.runner: Any = session(folder / ONNX_FILE)
        self.reads_tokens = any(name.endswith(".tokens") for name in info.inputs)
        self.eval()

    @property
    def runtime(self) -> str:
        return self.info.runtime

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> ModelOutput:
        dims = {c: self.config.modalities[c] for c in self.modalities}
        capped = cap_tokens(features, self.info.token_cap)
        feed = graph_inputs(dims, self.reads_tokens, capped, present.cpu()).feed()
        outputs = dict(
            zip(self.info.outputs, self.runner.run(self.info.outputs, feed), strict=True)
        )
        logits = torch.from_numpy(outputs["logits"])
        fused = torch.from_numpy(outputs["fused"])
        weights = torch.from_numpy(outputs["weights"]) if "weights" in outputs else None
        return ModelOutput(logits, FusionOutput(fused=fused, weights=weights))
