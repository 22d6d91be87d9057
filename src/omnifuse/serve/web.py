"""The web page served at ``/``: plain HTML, JavaScript and CSS shipped inside the package.

There is no build step and nothing is fetched from a CDN, so the page works offline. Only the
files listed in ``omnifuse/serve/static`` when the module is imported can be served: a request
names a file, never a path, so nothing outside that folder is reachable.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page talks only to its own origin; images and audio previews come from data: and blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _static_files() -> dict[str, Traversable]:
    """The servable files by name: the regular files of the package's ``static`` folder."""
    folder = resources.files("omnifuse.serve").joinpath("static")
    return {
        entry.name: entry
        for entry in folder.iterdir()
        if entry.is_file() and _suffix(entry.name) in MEDIA_TYPES
    }


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


STATIC_FILES = _static_files()

router = APIRouter(tags=["web"])


def _file_response(name: str) -> Response:
    entry = STATIC_FILES.get(name)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"no static file named {name!r}")
    return Response(
        content=entry.read_bytes(), media_type=MEDIA_TYPES[_suffix(name)], headers=PAGE_HEADERS
    )


@router.get("/", include_in_schema=False)
def index_page() -> Response:
    """The single-page app: attach an image or audio, ask, read the streamed answer."""
    return _file_response("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """One of the page's assets (script, style sheet, icon) by file name."""
    return _file_response(name)
