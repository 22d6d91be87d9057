"""The openai backend sends its API key to the base URL it was configured for and nowhere else:
two loopback HTTP servers, the configured one redirecting elsewhere (to the other server, and to
a path outside the API on itself), and a request by absolute URL to the other server. Each
server records the Authorization header of every request it receives."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from omnifuse.llm import create_llm
from omnifuse.llm.key_scope import KeyScope
from omnifuse.llm.openai_compat import OpenAICompatLLM

pytest.importorskip("openai")

KEY = "sk-configured-for-the-api-only"
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}]}


@dataclass
class Recorder:
    """A loopback server: ``redirects`` maps a path to a Location; other paths answer the
    model list. ``seen`` holds (path, Authorization or None) per request."""

    redirects: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def keys_at(self, path: str) -> list[str | None]:
        return [key for seen_path, key in self.seen if seen_path == path]


def serve(recorder: Recorder) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.seen.append((self.path, self.headers.get("Authorization")))
            location = recorder.redirects.get(self.path)
            body = b"" if location else json.dumps(MODELS).encode()
            self.send_response(307 if location else 200)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture()
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    """The configured server and another one, both on loopback."""
    configured, other = Recorder(), Recorder()
    configured.httpd, other.httpd = serve(configured), serve(other)
    yield configured, other
    for recorder in (configured, other):
        assert recorder.httpd is not None
        recorder.httpd.shutdown()
        recorder.httpd.server_close()


def backend(base_url: str) -> OpenAICompatLLM:
    llm = create_llm("openai", base_url=base_url, model="m", api_key=KEY, max_retries=0)
    assert isinstance(llm, OpenAICompatLLM)
    return llm


def test_the_key_is_not_forwarded_on_a_redirect_to_another_server(
    servers: tuple[Recorder, Recorder],
) -> None:
    configured, other = servers
    configured.redirects["/v1/models"] = f"{other.url}/v1/models"
    llm = backend(f"{configured.url}/v1")
    try:
        assert llm.list_models() == ["m"]
    finally:
        llm.close()
    assert configured.keys_at("/v1/models") == [f"Bearer {KEY}"]
    assert other.seen == [("/v1/models", None)]


def test_the_key_is_not_forwarded_outside_the_api_path_on_the_same_server(
    servers: tuple[Recorder, Recorder],
) -> None:
    """A gateway serving several tenants on one host: httpx keeps the key on a redirect within
    one origin, the scope does not."""
    configured, _ = servers
    configured.redirects["/tenant-a/v1/models"] = "/tenant-b/v1/models"
    llm = backend(f"{configured.url}/tenant-a/v1")
    try:
        assert llm.list_models() == ["m"]
    finally:
        llm.close()
    assert configured.keys_at("/tenant-a/v1/models") == [f"Bearer {KEY}"]
    assert configured.keys_at("/tenant-b/v1/models") == [None]


def test_a_request_by_absolute_url_elsewhere_carries_no_key(
    servers: tuple[Recorder, Recorder],
) -> None:
    configured, other = servers
    llm = backend(f"{configured.url}/v1")
    try:
        elsewhere = llm.client.get(f"{other.url}/v1/models", cast_to=httpx.Response)
        here = llm.client.get(f"{configured.url}/v1/models", cast_to=httpx.Response)
    finally:
        llm.close()
    assert elsewhere.status_code == here.status_code == 200
    assert other.seen == [("/v1/models", None)]
    assert configured.seen == [("/v1/models", f"Bearer {KEY}")]


@pytest.mark.parametrize(
    ("url", "covered"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.0.0.1:8080/v1/chat/completions", True),
        ("HTTP://127.0.0.1:8080/v1/models?x=1", True),
        ("http://127.0.0.1:8080/v10/models", False),
        ("http://127.0.0.1:8080/models", False),
        ("http://127.0.0.1:8081/v1/models", False),
        ("https://127.0.0.1:8080/v1/models", False),
        ("http://localhost:8080/v1/models", False),
        ("http://127.0.0.1:8080@evil.example/v1/models", False),
    ],
)
def test_the_scope_is_the_base_url_and_below(url: str, covered: bool) -> None:
    assert KeyScope("http://127.0.0.1:8080/v1").covers(url) is covered


def test_default_ports_are_the_same_origin() -> None:
    scope: Any = KeyScope("https://api.example.com/v1")
    assert scope.covers("https://api.example.com:443/v1/models")
    assert not scope.covers("http://api.example.com/v1/models")
