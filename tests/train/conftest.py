"""A tiny AV-digits set and its cached features, built once per session.

The encoders are the small trainable ones at their seeded random initialisation (a 1-block CNN
on 16 px images, the log-mel CNN): frozen random features are enough for a fusion model to learn
digits well above chance in seconds, and encoding all 150 samples takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnifuse.data.cache import CachedFeatureDataset, encode_manifest

ENCODERS = {"image": "cnn-image", "audio": "logmel-cnn"}
ENCODER_CONFIG: dict[str, dict[str, Any]] = {
    "image": {"image_size": 16, "channels": [32]},
    "audio": {},
}


@pytest.fixture(scope="session")
def digits(built_dataset: Callable[..., Path]) -> Path:
    """The manifest of a 150-sample AV-digits build (106 train, 22 val, 22 test)."""
    return built_dataset("av-digits", seed=0, size=150) / "manifest.jsonl"


@pytest.fixture(scope="session")
def digit_cache(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("av-digits-cache")
    encode_manifest(digits, ENCODERS, out, encoder_config=ENCODER_CONFIG, store_tokens=False)
    return out


@pytest.fixture(scope="session")
def digit_sets(digits: Path, digit_cache: Path) -> dict[str, CachedFeatureDataset]:
    return {
        split: CachedFeatureDataset(digit_cache, digits, ["image", "audio"], split=split)
        for split in ("train", "val", "test")
    }
