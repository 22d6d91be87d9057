"""A real server for the API tests, started once per session on a free loopback port, serving
what :mod:`serve_kit` builds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from serve_kit import LIMITS, ServeData, build_serve_data

from omnifuse.serve import BatchingConfig, ServeConfig
from omnifuse.serve.runner import BackgroundServer


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory: pytest.TempPathFactory) -> ServeData:
    os.environ.setdefault("OMNIFUSE_PROGRESS", "0")
    return build_serve_data(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="session")
def server(serve_data: ServeData) -> Iterator[BackgroundServer]:
    config = ServeConfig(
        port=0,
        models_dir=serve_data.models,
        index_dir=serve_data.index,
        allowed_root=serve_data.root,
        limits=LIMITS,
        batching=BatchingConfig(max_batch=32, max_wait_ms=2.0, timeout_s=120.0),
    )
    with BackgroundServer(config) as running:
        yield running


@pytest.fixture(scope="session")
def api(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180.0) as client:
        yield client
