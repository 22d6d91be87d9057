"""The API description declares the JSON error responses: every operation lists the statuses it
can answer besides success, each in the one error shape, and the errors the server really sends
are among those declared and match that shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from omnifuse.serve import ServeConfig, ServeLimits, create_app
from omnifuse.serve.openapi import ErrorResponse

LOCAL = "http://127.0.0.1"
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
KEY = "openapi-test-key-0123"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(ServeConfig()).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_declares_its_errors_in_the_one_shape(document: dict[str, Any]) -> None:
    seen = 0
    for method, path, operation in operations(document):
        responses = operation["responses"]
        errors = {int(s) for s in responses if s[0] in "45"}
        assert {400, 413, 500} <= errors, (method, path)
        if path.startswith("/v1/"):
            assert {401, 404, 503} <= errors, (method, path)
        if "requestBody" in operation:
            assert {403, 415, 422} <= errors, (method, path)
        for status in errors:
            content = responses[str(status)]["content"]
            assert content == {"application/json": {"schema": ERROR_REF}}, (method, path, status)
            assert responses[str(status)]["description"]
        seen += 1
    assert seen >= 11
    schemas = document["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert schemas["ErrorDetail"]["required"] == ["message", "type", "code"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas


LOCKED = ServeConfig(api_keys=(KEY,))
SMALL_BODIES = ServeConfig(limits=ServeLimits(max_body_bytes=1024))
BAD_JSON = {"content": b"{nope", "headers": {"content-type": "application/json"}}
CASES: list[tuple[str, str, dict[str, Any], int, ServeConfig]] = [
    ("GET", "/healthz", {"headers": {"Host": "evil.example"}}, 400, ServeConfig()),
    ("POST", "/v1/embeddings", BAD_JSON, 400, ServeConfig()),
    ("POST", "/v1/embeddings", {"json": {"model": "nope", "input": "x"}}, 404, ServeConfig()),
    ("POST", "/v1/search", {"json": {"query": "cat", "k": "ten"}}, 422, ServeConfig()),
    ("GET", "/v1/models/nope", {}, 404, ServeConfig()),
    ("POST", "/v1/chat/completions", {"json": {"messages": "hi"}}, 422, ServeConfig()),
    ("GET", "/metrics", {}, 401, LOCKED),
    ("POST", "/v1/predict", {"content": b"x" * 2048}, 413, SMALL_BODIES),
]
"""(method, path, request, the status it gets, the server's settings)."""


@pytest.mark.parametrize(("method", "path", "request_kwargs", "status", "config"), CASES)
def test_errors_sent_are_declared_and_in_shape(
    document: dict[str, Any],
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
    status: int,
    config: ServeConfig,
) -> None:
    with TestClient(create_app(config), base_url=LOCAL) as client:
        response = client.request(method, path, **request_kwargs)
    assert response.status_code == status, response.text
    template = "/v1/models/{model_id}" if path.startswith("/v1/models/") else path
    declared = document["paths"][template][method.lower()]["responses"]
    assert str(status) in declared, (method, template, status)
    body = ErrorResponse.model_validate(response.json())
    assert set(response.json()["error"]) == {"message", "type", "code"} and body.error.message
