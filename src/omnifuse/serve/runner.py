"""Running the app with uvicorn: in the foreground (``omnifuse serve``) or on a background
thread (tests, notebooks) bound to a socket opened before the thread starts, so the port is
known and free of races."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING

from omnifuse.serve.config import ServeConfig

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

STARTUP_TIMEOUT_S = 120.0


def uvicorn_config(app: FastAPI, config: ServeConfig, *, log_level: str = "info") -> uvicorn.Config:
    """Uvicorn settings: keep-alive for benchmarks' connection reuse, a bounded graceful exit."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def bind(config: ServeConfig) -> tuple[socket.socket, ServeConfig]:
    """A listening-ready socket on the config's address, and the config with the bound port
    (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose protocol says TCP, and without it every response split in two writes waits
    # for the client's delayed acknowledgement (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError:
        sock.close()
        raise
    return sock, replace(config, port=int(sock.getsockname()[1]))


def serve_forever(
    config: ServeConfig,
    *,
    log_level: str = "info",
    on_bound: Callable[[ServeConfig], None] | None = None,
) -> None:
    """Build the app, bind, tell ``on_bound`` the address, and serve until interrupted."""
    import uvicorn

    from omnifuse.serve import create_app

    app = create_app(config)
    sock, config = bind(config)
    if on_bound is not None:
        on_bound(config)
    server = uvicorn.Server(uvicorn_config(app, config, log_level=log_level))
    with sock:
        server.run(sockets=[sock])


class BackgroundServer:
    """``with BackgroundServer(config) as server: httpx.get(server.url + "/healthz")``.

    Port 0 in the config picks a free port; :attr:`url` names the one bound.
    """

    def __init__(self, config: ServeConfig, *, log_level: str = "warning") -> None:
        import uvicorn

        from omnifuse.serve import create_app

        self.app = create_app(config)
        self._socket, self.config = bind(config)
        self.port = self.config.port
        self.server = uvicorn.Server(uvicorn_config(self.app, config, log_level=log_level))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return self.config.url

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited during start-up (see its log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
