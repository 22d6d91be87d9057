"""What every test shares: the run policy (no progress bars, one torch thread) and the built-in
datasets, each built once per session for the folders that read it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_progress_bars() -> Iterator[None]:
    """Progress bars only clutter captured output; servers and CLIs started by tests inherit
    the setting through the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMNIFUSE_PROGRESS", "0")
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Test models and batches are tiny: they run fastest, and steadiest on a busy machine, on
    one intra-op thread, where more threads only spin-wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


BuiltDataset = Callable[..., Path]
"""``built_dataset(name, **params)``: the folder of a built-in dataset built with ``params``."""


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory: pytest.TempPathFactory) -> BuiltDataset:
    """Builds a built-in dataset on first request and hands the same folder to every later
    request with the same arguments, so folders that test the same data build it once.
    Tests read these folders and never write into them."""
    from omnifuse.data.builders import build

    built: dict[str, Path] = {}

    def get(name: str, **params: Any) -> Path:
        key = repr((name, sorted(params.items())))
        if key not in built:
            out = tmp_path_factory.mktemp(name)
            build(name, out, **params)
            built[key] = out
        return built[key]

    return get


@pytest.fixture(scope="session")
def speech_test(built_dataset: BuiltDataset) -> dict[str, tuple[Path, str]]:
    """Utterance id → (16 kHz WAV, reference transcript) of the real speech-test set. Its source,
    Debian's pocketsphinx-testdata, is installed with the project, so its absence fails here."""
    import json

    root = built_dataset("speech-test")
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    return {r["id"]: (root / r["audio"], r["text"]) for r in rows}
