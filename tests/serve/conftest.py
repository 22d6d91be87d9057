"""A real server for the API tests, started once per session on a free loopback port, serving
what :mod:`serve_kit` builds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from serve_kit import LIMITS, ServeData, build_serve_data, media_files

from omnifuse.serve import BatchingConfig, ServeConfig
from omnifuse.serve.runner import BackgroundServer


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory: pytest.TempPathFactory) -> ServeData:
    return build_serve_data(tmp_path_factory.mktemp("serve"))


class FileHost:
    """A loopback HTTP server with fixed answers per path, standing in for a remote host."""

    def __init__(self, answers: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = answers.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


@pytest.fixture(scope="session")
def file_host(serve_data: ServeData) -> Iterator[FileHost]:
    host = FileHost(media_files(serve_data))
    host.thread.start()
    yield host
    host.httpd.shutdown()
    host.httpd.server_close()


@pytest.fixture(scope="session")
def server(serve_data: ServeData, file_host: FileHost) -> Iterator[BackgroundServer]:
    config = ServeConfig(
        port=0,
        models_dir=serve_data.models,
        index_dir=serve_data.index,
        allowed_root=serve_data.root,
        allowed_url_hosts=(file_host.host,),
        limits=LIMITS,
        batching=BatchingConfig(max_batch=32, max_wait_ms=2.0, timeout_s=120.0),
    )
    with BackgroundServer(config) as running:
        yield running


@pytest.fixture(scope="session")
def api(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180.0) as client:
        yield client
