"""An API key goes only to the server it was configured for.

The openai client follows redirects and accepts absolute URLs; httpx drops ``Authorization``
on a redirect to another origin, but keeps it on the same host outside the API's path (a
shared gateway's other tenants), and a request made with an absolute URL carries it wherever
it points. :class:`KeyScope`, an httpx request hook, runs before every request and every
redirect hop and removes the key from any whose URL is not under the configured base URL:
same scheme, host and port, and a path at or below the base path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

KEY_HEADERS = ("authorization", "api-key")
"""Where OpenAI-compatible clients carry the key (``api-key`` is Azure's form)."""
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_and_path(url: str) -> tuple[tuple[str, str, int | None], str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme)
    return (scheme, (parts.hostname or "").lower(), port), parts.path or "/"


class KeyScope:
    """``httpx.Client(event_hooks={"request": [KeyScope(base_url)]})``: the key only under
    ``base_url``."""

    def __init__(self, base_url: str) -> None:
        self.origin, path = origin_and_path(base_url)
        self.path = path.rstrip("/")

    def covers(self, url: str) -> bool:
        """Whether ``url`` is the base URL or below it."""
        origin, path = origin_and_path(url)
        if origin != self.origin:
            return False
        return path == self.path or path.startswith(self.path + "/")

    def __call__(self, request: Any) -> None:
        if not self.covers(str(request.url)):
            for name in KEY_HEADERS:
                request.headers.pop(name, None)
