"""``omnifuse export`` and ``omnifuse quantize``: a model folder whose fusion and head run in
onnxruntime, in fp32 or with int8 weights; ``predict`` and ``serve`` take either."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omnifuse.cli.render import console

FORMATS = ("onnx",)


def export(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by omnifuse train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The exported model folder.")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    tolerance: Annotated[
        float, typer.Option(help="Largest |Δ| of the logits against torch that is accepted.")
    ] = 1e-4,
) -> None:
    """Export the fusion and head to ONNX (missing modalities stay an input: the presence
    mask); the graph is checked against torch under every pattern of missing modalities."""
    from omnifuse.export import export_onnx
    from omnifuse.models import load_model

    if format not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    info = export_onnx(load_model(model_dir), out, tolerance=tolerance, source=str(model_dir))
    console.print(
        f"wrote {out} ({info.fusion}: {len(info.inputs)} inputs, max |Δ| {info.max_abs_diff:.2e} "
        f"over {info.checked_samples} checked samples)"
    )


def quantize(
    model_dir: Annotated[Path, typer.Argument(help="A model folder from omnifuse export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The quantised model folder.")],
    int8: Annotated[bool, typer.Option("--int8", help="int8 weights (dynamic quantisation).")] = (
        False
    ),
) -> None:
    """Quantise an exported model's graph (int8 weights, activations quantised at run time)."""
    from omnifuse.export import quantize_int8

    if not int8:
        raise typer.BadParameter("say which: --int8", param_hint="--int8")
    quantize_int8(model_dir, out)
    console.print(f"wrote {out} (int8)")
