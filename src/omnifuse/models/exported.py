"""Model folders whose fusion and head run in onnxruntime: what ``omnifuse export`` and
``omnifuse quantize`` write (:mod:`omnifuse.export`) and how they load.

Such a folder is a model folder (config, weights — the encoders still come from there) plus
``model.onnx`` and ``export.json``. The graph's inputs, per column in the model's column order:
``{column}.tokens`` (B, T, D) and ``{column}.mask`` (B, T) when the fusion reads token
sequences, and ``{column}.pooled`` (B, D); then ``present`` (B, M). Outputs: ``logits``,
``fused`` and, where the fusion reports them, ``weights``. :class:`OnnxFusionModel` keeps the
encoders, the presence mask, ``predict_raw`` and everything around the forward pass of the
torch model, so ``predict``, ``serve`` and the assistant take it as they take any model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.fileio import write_json_atomic
from omnifuse.fusion.base import FusionOutput
from omnifuse.models.fusion_model import FusionModel, ModelOutput
from omnifuse.nn import downsample_tokens
from omnifuse.types import Encoded

ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"
RUNTIMES = ("onnx", "onnx-int8")


@dataclass
class ExportInfo:
    """What ``export.json`` records."""

    runtime: str
    fusion: str
    inputs: list[str]
    outputs: list[str]
    token_cap: int | None
    max_abs_diff: float
    checked_samples: int
    source: str = ""

    @classmethod
    def read(cls, folder: str | Path) -> ExportInfo | None:
        path = Path(folder) / EXPORT_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            info = cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"{path}: not an export record ({err})") from None
        if info.runtime not in RUNTIMES:
            raise ConfigError(f"{path}: unknown runtime {info.runtime!r}")
        return info

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / EXPORT_FILE, asdict(self))


def onnxruntime() -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise MissingDependencyError("onnxruntime", extra="export") from None
    return onnxruntime


def session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session over ``path`` (``threads``: torch's count by default)."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # no busy-waiting between runs: the thread would take a CPU from torch and other work
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cap_tokens(features: Mapping[str, Encoded], cap: int | None) -> dict[str, Encoded]:
    """Sequences longer than ``cap`` pooled down to it, as the fusion would."""
    if cap is None:
        return dict(features)
    capped = {}
    for column, encoded in features.items():
        if encoded.tokens.shape[1] > cap:
            tokens, mask = downsample_tokens(encoded.tokens, encoded.mask, cap)
            encoded = Encoded(tokens, mask, encoded.pooled)
        capped[column] = encoded
    return capped


@dataclass(frozen=True)
class GraphInputs:
    """The named input tensors of a graph for a batch of features."""

    names: list[str]
    tensors: list[torch.Tensor]

    def feed(self) -> dict[str, object]:
        """The inputs as onnxruntime takes them (numpy arrays)."""
        return {n: t.numpy() for n, t in zip(self.names, self.tensors, strict=True)}


def input_names(columns: Sequence[str], tokens: bool) -> list[str]:
    per_column = ("tokens", "mask", "pooled") if tokens else ("pooled",)
    return [f"{c}.{part}" for c in columns for part in per_column] + ["present"]


def graph_inputs(
    dims: Mapping[str, int], tokens: bool, features: Mapping[str, Encoded], present: torch.Tensor
) -> GraphInputs:
    """A graph's inputs, columns in ``dims``' order: each column's features (zeros, masked, for
    a column the batch lacks — its presence is False), then ``present``."""
    batch = present.shape[0]
    tensors: list[torch.Tensor] = []
    for column, dim in dims.items():
        encoded = features.get(column)
        if encoded is None:
            zeros = torch.zeros(batch, 1, dim)
            encoded = Encoded(zeros, torch.zeros(batch, 1, dtype=torch.bool), zeros[:, 0])
        if tokens:
            tensors += [encoded.tokens.float(), encoded.mask.bool(), encoded.pooled.float()]
        else:
            tensors.append(encoded.pooled.float())
    tensors.append(present.bool())
    names = input_names(list(dims), tokens)
    return GraphInputs(names, [t.detach().contiguous() for t in tensors])


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
