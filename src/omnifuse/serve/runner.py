"""Running the app with uvicorn: in the foreground (``omnifuse serve``) or on a background
thread (tests, notebooks) bound to a socket opened before the thread starts, so the port is
known and free of races."""

from __future__ import annotations

import socket
import threading
import time
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


def serve_forever(config: ServeConfig, *, log_level: str = "info") -> None:
    """Build the app and serve until interrupted."""
    import uvicorn

    from omnifuse.serve import create_app

    server = uvicorn.Server(uvicorn_config(create_app(config), config, log_level=log_level))
    server.run()


class BackgroundServer:
    """``with BackgroundServer(config) as server: httpx.get(server.url + "/healthz")``.

    Port 0 in the config picks a free port; :attr:`url` names the one bound.
    """

    def __init__(self, config: ServeConfig, *, log_level: str = "warning") -> None:
        import uvicorn

        from omnifuse.serve import create_app

        self.config = config
        self.app = create_app(config)
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((config.host, config.port))
        self.port = int(self._socket.getsockname()[1])
        self.server = uvicorn.Server(uvicorn_config(self.app, config, log_level=log_level))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

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
