"""Built-in alignment recipes for the built-in datasets (``omnifuse align --data NAME``).

``configs/world-align.yaml`` and ``configs/fashion-align.yaml`` spell out the same recipes at
their study sizes.
"""

from __future__ import annotations

from typing import Any

from omnifuse.errors import ConfigError

FASHION_HELD_OUT = ("Sandal", "Shirt", "Bag")


def world_preset(size: int, seed: int) -> dict[str, Any]:
    """Captions ↔ images (CLIP), spoken captions bound to the captions (ImageBind)."""
    return {
        "data": {
            "dataset": "world",
            "manifest": "scenes",
            "size": size,
            "seed": seed,
            "group_by": "caption",
        },
        "encoders": {
            "caption": "minilm",
            "image": {"name": "effnet-lite0", "image_size": 128},
            "caption_audio": {"name": "whisper-tiny-en", "pad_to_30s": False},
        },
        "cache": {"device": "auto"},
        "pairs": [["caption", "image"]],
        "bind": [{"column": "caption_audio", "anchor": "caption"}],
        "head": {"dim": 256, "kind": "mlp", "pool": "attention"},
        "heads": {"caption_audio": {"stride": 4}},
        "train": {"epochs": 30, "batch_size": 64, "lr": 0.001, "patience": 6, "seed": seed},
    }


def fashion_preset(size: int, seed: int) -> dict[str, Any]:
    """Fashion-MNIST captions ↔ images with three classes held out for zero-shot; the text
    head is locked so unseen class names keep their MiniLM geometry."""
    return {
        "data": {
            "dataset": "fashion-mnist",
            "manifest": "alignment",
            "size": size,
            "seed": seed,
            "group_by": "text",
            "exclude": {"label": list(FASHION_HELD_OUT)},
        },
        "encoders": {"text": "minilm", "image": {"name": "effnet-lite0", "image_size": 224}},
        "cache": {"device": "auto"},
        "pairs": [["text", "image"]],
        "head": {"dim": 384, "kind": "linear", "pool": "mean", "dropout": 0.0},
        "heads": {"text": {"locked": True}, "image": {"kind": "mlp", "hidden": 512}},
        "train": {"epochs": 30, "batch_size": 128, "lr": 0.001, "patience": 6, "seed": seed},
    }


PRESETS = {"world": world_preset, "fashion-mnist": fashion_preset}


def preset(name: str, *, size: int, seed: int = 0) -> dict[str, Any]:
    """The recipe for built-in dataset ``name`` as a config mapping."""
    try:
        return PRESETS[name](size, seed)
    except KeyError:
        known = sorted(PRESETS)
        raise ConfigError(f"no alignment recipe for {name!r}; use one of {known}") from None
