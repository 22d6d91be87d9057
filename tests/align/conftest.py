"""A tiny world and a tiny alignment run on it, built once per session.

Captions use the pretrained MiniLM (fast to load); images and spoken captions use the small
trainable encoders at their seeded random initialisation, which run in milliseconds and whose
frozen features are enough for projection heads to align the training pairs well above chance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from alignkit import tiny_config

from omnifuse.align import AlignConfig, AlignResult, train_alignment
from omnifuse.data.builders import build

WORLD_SIZE = 40


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMNIFUSE_PROGRESS", "0")
    yield


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny heads train fastest, and steadiest on a busy machine, on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-scene world (32 train, 4 val, 4 test): its folder."""
    out = tmp_path_factory.mktemp("align-world")
    build("world", out, seed=0, size=WORLD_SIZE, video_clips=0, image_size=48)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> AlignResult:
    """The alignment of the tiny world, trained once for the session."""
    root = tmp_path_factory.mktemp("align-run")
    config = AlignConfig.from_dict(tiny_config(tiny_world, root / "cache"))
    return train_alignment(config, root / "model")
