"""The Host-name allow-list, the defence of a key-less loopback server against DNS rebinding: a
request naming any host but the server's own is refused on every route (the web page and the
API description included), over a real socket and from a real browser whose resolver maps an
attacker's name to 127.0.0.1; the server's own names, with any port, are served."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnifuse.errors import ConfigError
from omnifuse.serve import ServeConfig
from omnifuse.serve.hosts import HostAllowList, configured_name, host_name
from omnifuse.serve.runner import BackgroundServer

pytest.importorskip("fastapi")

EXTRA_NAME = "omnifuse.internal"
FOREIGN = ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example")


@pytest.fixture(scope="module")
def running() -> Iterator[BackgroundServer]:
    """The default, key-less loopback server, with one extra name allowed."""
    with BackgroundServer(ServeConfig(port=0, allowed_hosts=(EXTRA_NAME,))) as server:
        yield server


@pytest.fixture(scope="module")
def client(running: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=60.0) as http:
        yield http


def every_route(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in."""
    from web_fixtures import served_routes

    out = []
    for route in served_routes(app):
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        out += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return out


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed" and error["type"] == "invalid_request_error"
    assert "Host" in error["message"]


@pytest.mark.parametrize("host", FOREIGN)
def test_a_foreign_host_is_refused_on_every_route(
    running: BackgroundServer, client: httpx.Client, host: str
) -> None:
    routes = every_route(running.app)
    api_paths = {path for _, path in routes if path.startswith("/v1/")}
    assert {"/v1/embeddings", "/v1/search", "/v1/chat/completions", "/v1/models/x"} <= api_paths
    assert {("GET", "/"), ("GET", "/openapi.json"), ("GET", "/docs")} <= set(routes)
    for method, path in routes:
        response = client.request(method, path, headers={"Host": host}, json={"input": "x"})
        assert_refused(response)
        assert host.split(":")[0] in response.json()["error"]["message"]


def test_the_servers_own_names_are_answered_on_any_port(
    running: BackgroundServer, client: httpx.Client
) -> None:
    port = running.port
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "LOCALHOST.:80",
        f"[::1]:{port}",
        "[::1]",
        f"{EXTRA_NAME}:8443",
    ):
        response = client.get("/healthz", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)
    assert client.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200


def raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    """The status and body of one raw HTTP/1.0 request (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b"\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.0\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:http\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: [::1\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1 evil.example\r\n",
    ],
    ids=["no Host", "port not a number", "open bracket", "two names"],
)
def test_a_missing_or_malformed_host_is_refused(running: BackgroundServer, head: bytes) -> None:
    status, body = raw_request(running.port, head)
    assert status == 400 and json.loads(body)["error"]["code"] == "host_not_allowed", body


@pytest.mark.parametrize(
    "hosts", [(b"127.0.0.1", b"evil.example"), (b"evil.example", b"127.0.0.1")], ids=str
)
def test_two_host_headers_are_refused(running: BackgroundServer, hosts: tuple[bytes, ...]) -> None:
    """Refused by the HTTP parser (h11) before the app; the guard refuses them as well where a
    server's parser lets them through."""
    head = b"GET /healthz HTTP/1.0\r\n" + b"".join(b"Host: %s\r\n" % h for h in hosts)
    status, _ = raw_request(running.port, head)
    assert status == 400


def test_a_browser_led_to_the_server_by_another_name_is_refused(
    running: BackgroundServer, tmp_path: Any
) -> None:
    """DNS rebinding as a browser lives it: ``evil.example`` resolves to 127.0.0.1, so the page
    the browser loads from that name is answered by the server, which refuses it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from web_fixtures import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    with sync_api.sync_playwright() as driver:
        browser = launch_chromium(driver, "--host-resolver-rules=MAP evil.example 127.0.0.1")
        try:
            page = browser.new_page()
            rebound = page.goto(f"http://evil.example:{running.port}/")
            assert rebound is not None and rebound.status == 400
            assert rebound.json()["error"]["code"] == "host_not_allowed"
            own = page.goto(f"{running.url}/")
            assert own is not None and own.status == 200
        finally:
            browser.close()


def test_header_values_name_hosts_without_case_port_or_trailing_dot() -> None:
    assert host_name("Example.ORG.:8000") == "example.org"
    assert host_name("[::1]:8000") == "::1" and host_name("[0:0::1]") == "::1"
    for malformed in ("", "a b", "::1", "[::1", "[::1]x", "host:port", "host:123456", "é.fr"):
        assert host_name(malformed) is None, malformed


def test_a_server_bound_to_every_address_also_answers_to_ip_addresses() -> None:
    everywhere = HostAllowList("0.0.0.0", ("api.example.com",))
    assert everywhere.allows("10.1.2.3:8000") and everywhere.allows("[fe80::1]")
    assert everywhere.allows("api.example.com:443") and everywhere.allows(socket.gethostname())
    assert not everywhere.allows("evil.example")
    loopback = HostAllowList("127.0.0.1")
    assert not loopback.allows("10.1.2.3") and not loopback.allows("0.0.0.0")
    assert loopback.accepts(["127.0.0.1"]) and not loopback.accepts([])
    assert not loopback.accepts(["127.0.0.1", "127.0.0.1"])  # one Host header, not two
    anything = HostAllowList("127.0.0.1", ("*",))
    assert anything.accepts(["evil.example"]) and anything.accepts([])


def test_configured_names_are_checked_before_serving() -> None:
    assert configured_name("[::1]") == "::1" and configured_name("Api.Example.com.") == (
        "api.example.com"
    )
    for bad, message in (
        ("api.example.com:8000", "without a port"),
        ("http://api.example.com", "not a host name"),
        ("", "non-empty"),
    ):
        with pytest.raises(ConfigError, match=message):
            ServeConfig(allowed_hosts=(bad,)).validate()
    with pytest.raises(ConfigError, match="list of names"):
        ServeConfig(allowed_hosts="api.example.com").validate()  # type: ignore[arg-type]
