"""Lightweight deployment: a fusion model's fusion and head as an ONNX graph run by
onnxruntime (:func:`export_onnx`), and the same graph with int8 weights (:func:`quantize_int8`).
Exported folders load with :func:`omnifuse.models.folder.load_model` like any model folder, as
an :class:`~omnifuse.models.exported.OnnxFusionModel`."""

from omnifuse.export.onnx import ExportError, export_onnx, quantize_int8
from omnifuse.models.exported import EXPORT_FILE, ONNX_FILE, ExportInfo, OnnxFusionModel

__all__ = [
    "EXPORT_FILE",
    "ONNX_FILE",
    "ExportError",
    "ExportInfo",
    "OnnxFusionModel",
    "export_onnx",
    "quantize_int8",
]
