"""Shared helpers of the alignment tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_config(world: Path, cache: Path, **train: Any) -> dict[str, Any]:
    """Captions ↔ images, spoken captions bound to the captions, small heads and budget."""
    return {
        "data": {"manifest": str(world / "scenes.jsonl"), "group_by": "caption"},
        "encoders": {
            "caption": "minilm",
            "image": {"name": "cnn-image", "image_size": 32, "channels": [16]},
            "caption_audio": {"name": "logmel-cnn"},
        },
        "cache": {"dir": str(cache)},
        "pairs": [["caption", "image"]],
        "bind": [{"column": "caption_audio", "anchor": "caption"}],
        "head": {"dim": 32, "kind": "mlp", "hidden": 64, "dropout": 0.0},
        "heads": {"caption_audio": {"pool": "attention", "queries": 2}},
        "train": {"epochs": 40, "batch_size": 16, "lr": 0.003, "patience": 40, **train},
    }


def effnet_config(world: Path, cache: Path, **train: Any) -> dict[str, Any]:
    """Captions ↔ images through the pretrained encoders (EfficientNet-Lite0 at 64 px, whole
    image), nothing bound: a tiny model whose image features see colours and shapes."""
    config = tiny_config(world, cache, **train)
    config["encoders"] = {
        "caption": "minilm",
        "image": {"name": "effnet-lite0", "image_size": 64, "center_crop": False},
    }
    config["bind"], config["heads"] = [], {}
    return config
