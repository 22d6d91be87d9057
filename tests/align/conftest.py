"""A tiny world and a tiny alignment run on it, built once per session.

Captions use the pretrained MiniLM (fast to load); images and spoken captions use the small
trainable encoders at their seeded random initialisation, which run in milliseconds and whose
frozen features are enough for projection heads to align the training pairs well above chance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alignkit import tiny_config

from omnifuse.align import AlignConfig, AlignResult, train_alignment

WORLD_SIZE = 40


@pytest.fixture(scope="session")
def tiny_world(built_dataset: Callable[..., Path]) -> Path:
    """A 40-scene world (32 train, 4 val, 4 test): its folder."""
    return built_dataset("world", seed=0, size=WORLD_SIZE, video_clips=0, image_size=48)


@pytest.fixture(scope="session")
def tiny_run(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> AlignResult:
    """The alignment of the tiny world, trained once for the session."""
    root = tmp_path_factory.mktemp("align-run")
    config = AlignConfig.from_dict(tiny_config(tiny_world, root / "cache"))
    return train_alignment(config, root / "model")
