"""Exporting a fusion model's fusion and head to ONNX, checking it against torch, and int8.

``export_onnx`` writes a model folder that is the torch folder (config, weights — the encoders
still come from there) plus ``model.onnx`` and ``export.json``; it traces the graph with
``torch.export`` (batch size and token count dynamic; token sequences are capped at the
fusion's ``max_tokens`` before the graph, as the fusion itself would pool them), then runs it in
onnxruntime on random features with every pattern of missing modalities and on any batches the
caller gives, and refuses the export when the largest absolute difference in the logits exceeds
``tolerance``. ``quantize_int8`` turns a folder's graph into int8 weights with onnxruntime's
dynamic quantisation (activations quantised per batch at run time).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from omnifuse.errors import ConfigError, OmnifuseError
from omnifuse.export.graph import FusionGraph, random_features, token_cap
from omnifuse.fileio import staged_folder
from omnifuse.models import FusionModel
from omnifuse.models.exported import (
    ONNX_FILE,
    ExportInfo,
    cap_tokens,
    graph_inputs,
    onnxruntime,
    session,
)
from omnifuse.models.folder import save_model
from omnifuse.types import Encoded


class ExportError(OmnifuseError):
    """The model does not export, or its graph does not compute what the model does."""


def presence_patterns(columns: int, batch: int) -> Iterator[torch.Tensor]:
    """Presence masks: every non-empty subset of the columns for the whole batch, then a mix."""
    for size in range(columns, 0, -1):
        for subset in itertools.combinations(range(columns), size):
            present = torch.zeros(batch, columns, dtype=torch.bool)
            present[:, list(subset)] = True
            yield present
    mixed = torch.rand(batch, columns, generator=torch.Generator().manual_seed(7)) > 0.5
    mixed[:, 0] |= ~mixed.any(dim=1)
    yield mixed


def checking_batches(model: FusionModel, cap: int | None) -> Iterator[tuple[dict, torch.Tensor]]:
    """Random features (token counts below and above the cap) under every presence pattern,
    and with a column the batch lacks altogether."""
    longest = (cap or 8) * 2 + 3
    for seed, tokens in enumerate((1, 5, longest)):
        features, _ = random_features(model, batch=6, tokens=tokens, seed=seed + 1)
        for present in presence_patterns(len(model.modalities), 6):
            yield features, present
        absent = model.modalities[-1]
        present = torch.ones(6, len(model.modalities), dtype=torch.bool)
        present[:, -1] = False
        yield {c: f for c, f in features.items() if c != absent}, present


def largest_difference(
    model: FusionModel,
    runner: Any,
    tokens: bool,
    cap: int | None,
    batches: Iterable[tuple[Mapping[str, Encoded], torch.Tensor]],
) -> tuple[float, int]:
    """Max |Δ| of the logits between torch and the graph over the batches, and the samples."""
    dims = {c: model.config.modalities[c] for c in model.modalities}
    worst, samples = 0.0, 0
    with torch.inference_mode():
        for features, present in batches:
            expected = model(dict(features), present).logits
            feed = graph_inputs(dims, tokens, cap_tokens(features, cap), present).feed()
            got = torch.from_numpy(runner.run(["logits"], feed)[0])
            worst = max(worst, float((got - expected).abs().max()))
            samples += int(present.shape[0])
    return worst, samples


def export_onnx(
    model: FusionModel,
    out: str | Path,
    *,
    check: Iterable[tuple[Mapping[str, Encoded], torch.Tensor]] = (),
    tolerance: float = 1e-4,
    source: str = "",
) -> ExportInfo:
    """Write ``out`` (a model folder with ``model.onnx``) and return what was checked."""
    out = Path(out)
    model = model.eval()
    graph = FusionGraph(model).eval()
    cap = token_cap(model) if graph.tokens else None
    example = graph.inputs(*random_features(model, batch=3, tokens=min(cap or 6, 6)))
    with staged_folder(out) as staging:
        _trace(graph, example.tensors, staging / ONNX_FILE, cap)
        runner = session(staging / ONNX_FILE)
        batches = itertools.chain(checking_batches(model, cap), check)
        worst, samples = largest_difference(model, runner, graph.tokens, cap, batches)
        if not worst <= tolerance:
            raise ExportError(
                f"the ONNX graph of fusion {model.config.fusion!r} differs from torch by "
                f"{worst:.3g} (> {tolerance:g}) in the logits; not exported"
            )
        save_model(model, staging)
        info = ExportInfo(
            "onnx", model.config.fusion, graph.input_names, graph.output_names, cap, worst,
            samples, source,
        )  # fmt: skip
        info.write(staging)
    return info


def _trace(graph: FusionGraph, example: list[torch.Tensor], path: Path, cap: int | None) -> None:
    batch = torch.export.Dim("batch", min=1)
    tokens = {  # each column's token count is its own
        c: torch.export.Dim(f"tokens_{i}", min=1, max=cap or 100_000)
        for i, c in enumerate(graph.columns)
    }
    shapes = []
    for name in graph.input_names:
        column, _, part = name.rpartition(".")
        shapes.append({0: batch, 1: tokens[column]} if part in ("tokens", "mask") else {0: batch})
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                tuple(example),
                str(path),
                input_names=graph.input_names,
                output_names=graph.output_names,
                dynamic_shapes=(tuple(shapes),),
                dynamo=True,
                optimize=True,
                external_data=False,
                verbose=False,
            )
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"fusion {graph.model.config.fusion!r} does not export: {first}") from err


def quantize_int8(folder: str | Path, out: str | Path) -> ExportInfo:
    """A copy of an exported folder whose graph has int8 weights (dynamic quantisation)."""
    folder, out = Path(folder), Path(out)
    info = ExportInfo.read(folder)
    if info is None or info.runtime != "onnx":
        raise ConfigError(f"{folder} is not an ONNX export (run omnifuse export first)")
    onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with staged_folder(out) as staging:
        shutil.copytree(
            folder, staging, ignore=shutil.ignore_patterns(ONNX_FILE + "*"), dirs_exist_ok=True
        )
        quantize_dynamic(
            str(folder / ONNX_FILE), str(staging / ONNX_FILE), weight_type=QuantType.QInt8
        )
        quantized = ExportInfo(**{**asdict(info), "runtime": "onnx-int8", "source": str(folder)})
        quantized.write(staging)
    return quantized
