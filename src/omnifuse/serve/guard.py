"""The ASGI middleware in front of every route: Host names, API keys, body size, request metrics.

- **Host names**: a request whose ``Host`` header is not a name of this server (DNS rebinding,
  see :mod:`omnifuse.serve.hosts`) is answered 400 (``host_not_allowed``) on every path, the web
  page included.
- **API keys**: when the server has keys, ``/v1/*`` and ``/metrics`` need
  ``Authorization: Bearer <key>``; the key is compared with every configured key in constant
  time. ``/healthz``, the web page and the API description stay open.
- **Body size**: a declared ``Content-Length`` over the limit is answered 413 before any byte is
  read; a body without one (chunked) is counted as it streams and cut off at the limit.
- **Metrics**: count and latency (to the last byte, streaming included) per route template.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnifuse.serve.api_errors import BodyTooLarge, error_response
from omnifuse.serve.hosts import HostAllowList
from omnifuse.serve.metrics import ServeMetrics

PROTECTED_PREFIXES = ("/v1/", "/metrics")


class Guard:
    """Pure ASGI middleware (no buffering: streamed responses pass through untouched)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Sequence[str],
        max_body_bytes: int,
        metrics: ServeMetrics,
        hosts: HostAllowList,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.keys = [key.encode("utf-8") for key in api_keys]
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            rejection = self._reject(scope)
            if rejection is not None:
                await rejection(scope, receive, send_and_record)
            else:
                await self.app(scope, self._limited(receive), send_and_record)
        except BodyTooLarge as err:
            if status[0] != 500:  # the response had started: nothing more can be sent
                raise
            await error_response(413, str(err.detail), "request_too_large")(
                scope, receive, send_and_record
            )
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            self.metrics.request_done(route_label(scope), method, status[0], elapsed)

    def _reject(self, scope: Scope) -> ASGIApp | None:
        """A response for a request refused before it reaches a route, or None."""
        hosts = headers_named(scope, b"host")
        if not self.hosts.accepts(hosts):
            return error_response(400, self.hosts.refusal(hosts), "host_not_allowed")
        path = scope.get("path", "")
        if self.keys and path.startswith(PROTECTED_PREFIXES) and not self._authorized(scope):
            return error_response(
                401,
                "missing or invalid API key; send 'Authorization: Bearer <key>'",
                "invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return error_response(400, "invalid Content-Length header", "bad_request")
            if int(declared) > self.max_body_bytes:
                return error_response(
                    413,
                    f"request body of {declared} bytes is over the limit of "
                    f"{self.max_body_bytes} bytes",
                    "request_too_large",
                )
        return None

    def _authorized(self, scope: Scope) -> bool:
        value = header(scope, b"authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode("utf-8", "surrogateescape")
        matched = False
        for key in self.keys:  # no early exit: the time taken does not depend on which key
            matched |= hmac.compare_digest(given, key)
        return matched

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def receive_within_limit() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_within_limit


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as Latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def headers_named(scope: Scope, name: bytes) -> list[str]:
    """Every value of header ``name`` (lower-case bytes), decoded as Latin-1."""
    return [
        bytes(value).decode("latin-1") for key, value in scope.get("headers", ()) if key == name
    ]


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/models/{model_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
