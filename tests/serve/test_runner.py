"""Running the server: the listening socket, port 0, start and stop on a background thread."""

from __future__ import annotations

import socket

import httpx

from omnifuse.serve import ServeConfig
from omnifuse.serve.runner import BackgroundServer, bind


def test_the_listening_socket_is_tcp_without_nagle() -> None:
    """asyncio disables Nagle's algorithm only on sockets that say they are TCP; otherwise each
    response written in two parts waits ~40 ms for the client's delayed acknowledgement."""
    sock, config = bind(ServeConfig(port=0))
    with sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert config.port == sock.getsockname()[1] > 0
        assert config.url == f"http://127.0.0.1:{config.port}"


def test_background_server_starts_answers_and_stops() -> None:
    with BackgroundServer(ServeConfig(port=0)) as server:
        assert server.port > 0
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            statuses = {client.get("/healthz").status_code for _ in range(5)}
            assert statuses == {200}
            assert client.get("/").headers["content-type"].startswith("text/html")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2):
            refused = False
    except OSError:
        refused = True
    assert refused
