"""ONNX export of every fusion (fusion + head, the presence mask an input), int8 quantisation,
and exported folders loading and predicting like any model folder."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.errors import ConfigError
from omnifuse.export import ExportError, export_onnx, quantize_int8
from omnifuse.export.graph import random_features
from omnifuse.fusion import list_fusions
from omnifuse.models import ModelConfig, build_model
from omnifuse.models.exported import OnnxFusionModel
from omnifuse.models.folder import load_model, save_model

DIMS = {"audio": 24, "image": 16, "text": 8}


def _model(fusion: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(
        modalities=DIMS, fusion=fusion, fusion_cfg={"dim": 32, "max_tokens": 4}
        if fusion in TOKEN_CAPPED else {"dim": 32}, classes=["a", "b", "c"],
    )  # fmt: skip
    return build_model(config).eval()


TOKEN_CAPPED = {
    "transformer",
    "cross-attention",
    "hierarchical",
    "mixed",
    "serial-film",
    "serial-xattn",
}


@pytest.mark.parametrize("fusion", list_fusions())
def test_every_fusion_exports_within_1e_4(fusion: str, tmp_path: Path) -> None:
    model = _model(fusion)
    info = export_onnx(model, tmp_path / "onnx")
    assert info.max_abs_diff <= 1e-4 and info.checked_samples > 0
    loaded = load_model(tmp_path / "onnx")
    assert isinstance(loaded, OnnxFusionModel)
    features, present = random_features(model, batch=5, tokens=11, seed=3)
    present[1, 0] = present[2, 1] = present[3, 2] = False
    with torch.inference_mode():
        expected = model(features, present).logits
        got = loaded(features, present).logits
    assert torch.allclose(got, expected, atol=1e-4)


def test_int8_keeps_the_predictions_close(tmp_path: Path) -> None:
    model = _model("concat")
    export_onnx(model, tmp_path / "onnx")
    info = quantize_int8(tmp_path / "onnx", tmp_path / "int8")
    assert info.runtime == "onnx-int8"
    loaded = load_model(tmp_path / "int8")
    features, present = random_features(model, batch=64, tokens=3, seed=5)
    with torch.inference_mode():
        expected = model(features, present).logits
        got = loaded(features, present).logits
    assert float((got - expected).abs().max()) < 0.25
    agree = (got.argmax(1) == expected.argmax(1)).float().mean()
    assert agree > 0.9
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    assert any(node.op_type == "MatMulInteger" for node in graph.graph.node)


def test_commands_and_typed_errors(tmp_path: Path) -> None:
    folder = tmp_path / "torch"
    save_model(_model("gated"), folder)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(folder), "--out", str(tmp_path / "onnx")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["runtime"] == "onnx"
    result = runner.invoke(
        app, ["quantize", str(tmp_path / "onnx"), "--int8", "--out", str(tmp_path / "q")]
    )
    assert result.exit_code == 0, result.output
    with pytest.raises(ConfigError):
        quantize_int8(folder, tmp_path / "nope")  # not an export
    (tmp_path / "q" / "export.json").write_text("{not json")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "q")
    bad = runner.invoke(
        app, ["export", str(folder), "--out", str(tmp_path / "x"), "--format", "tflite"]
    )
    assert bad.exit_code != 0


def test_a_graph_that_differs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(_model("sum"), tmp_path / "onnx", tolerance=-1.0)
    assert not (tmp_path / "onnx").exists()
