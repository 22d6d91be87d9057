"""Fixtures for the index tests: an index of each backend in a fresh folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from index_helpers import BACKENDS, TEST_CONFIG

from omnifuse.index import VectorIndex, create_index


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[Callable[..., VectorIndex]]:
    """``make_index(backend, dim=..., metric=..., **cfg)`` in a fresh folder; closed afterwards."""
    made: list[VectorIndex] = []

    def make(backend: str, *, dim: int = 16, metric: str = "ip", **cfg: Any) -> VectorIndex:
        folder = tmp_path / f"index-{len(made)}"
        index = create_index(
            backend, folder, dim=dim, metric=metric, **{**TEST_CONFIG[backend], **cfg}
        )
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()
