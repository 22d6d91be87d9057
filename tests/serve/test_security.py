"""Who may call and where the server may listen: API keys, loopback by default, the refusal to
listen elsewhere without keys, and the metrics a scraper reads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from omnifuse.errors import ConfigError
from omnifuse.serve import ServeConfig
from omnifuse.serve.config import is_loopback
from omnifuse.serve.runner import BackgroundServer

KEYS = ("first-key-0123456789", "second-key-9876543210")


@pytest.fixture(scope="module")
def locked() -> Iterator[httpx.Client]:
    """A server that requires API keys (it loads nothing until asked)."""
    with (
        BackgroundServer(ServeConfig(port=0, api_keys=KEYS)) as running,
        httpx.Client(base_url=running.url, timeout=60.0) as client,
    ):
        yield client


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key-0000000000", "Basic Zmlyc3Q6a2V5", "Bearer", "first-key-0123456789"],
)
def test_protected_routes_need_a_valid_bearer_key(
    locked: httpx.Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/embeddings"), ("GET", "/metrics")):
        response = locked.request(method, path, headers=headers, json={"input": "x"})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_every_configured_key_opens_the_api(locked: httpx.Client) -> None:
    for key in KEYS:
        response = locked.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        lower = locked.get("/metrics", headers={"Authorization": f"bearer {key}"})
        assert lower.status_code == 200


def test_health_stays_open_and_reports_auth(locked: httpx.Client) -> None:
    health = locked.get("/healthz")
    assert health.status_code == 200
    assert health.json()["auth"] is True


def test_an_unauthorised_large_body_is_refused_before_it_is_read(locked: httpx.Client) -> None:
    response = locked.post("/v1/embeddings", content=b"x" * 100_000)
    assert response.status_code == 401


def test_loopback_is_the_default_and_elsewhere_needs_keys() -> None:
    assert ServeConfig().host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(ConfigError, match=r"refusing to serve on .0\.0\.0\.0. without API keys"):
        ServeConfig(host="0.0.0.0").validate()
    assert ServeConfig(host="0.0.0.0", api_keys=KEYS).validate().api_keys == KEYS
    with pytest.raises(ConfigError, match="at least 8 characters"):
        ServeConfig(api_keys=("short",)).validate()


def test_keys_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIFUSE_API_KEYS", f"{KEYS[0]}, {KEYS[1]} ,")
    config = ServeConfig(host="0.0.0.0").with_api_keys_from_env()
    assert config.api_keys == KEYS
    config.validate()


def test_the_cli_refuses_a_public_address_without_keys() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omnifuse", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "OMNIFUSE_API_KEYS": ""},
    )
    assert result.returncode == 2
    assert "refusing to serve on '0.0.0.0' without API keys" in result.stderr


def test_metrics_count_requests_and_batches(api: httpx.Client) -> None:
    api.post("/v1/embeddings", json={"model": "minilm", "input": ["one", "two"]})
    api.post("/v1/embeddings", json={"model": "minilm", "input": 5})
    text = api.get("/metrics").text
    assert 'omnifuse_requests_total{method="POST",route="/v1/embeddings",status="200"}' in text
    assert 'omnifuse_requests_total{method="POST",route="/v1/embeddings",status="422"}' in text
    assert 'omnifuse_batch_size_count{component="embed:minilm:text"}' in text
    assert 'omnifuse_request_seconds_bucket{le="+Inf",route="/v1/embeddings"}' in text
    assert "omnifuse_queue_depth" in text
    health = api.get("/healthz").json()
    assert "embedder:minilm" in health["loaded"]
    assert health["queues"]["embed:minilm:text"] == 0
