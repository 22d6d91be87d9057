"""Media references in requests → bytes, safely.

A request names an image or a clip in one of four ways:

- a data URI (``data:image/png;base64,...``) or bare base64 — decoded with strict base64 rules
  and a size check made on the encoded length, before decoding;
- an ``http(s)://`` URL — fetched only when its host is on the allow-list, without following
  redirects, with a timeout and a byte cap enforced while streaming;
- a server path (or ``file://`` URL) — read only when it resolves (symlinks included) inside
  the allowed root;

anything else is refused with a 4xx that says which rule applied. Decoding the bytes into pixels
or samples is left to :mod:`omnifuse.io`, with the server's :class:`DecodeLimits`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from omnifuse.errors import EmptyInputError, InputTooLargeError, InvalidValueError
from omnifuse.serve.api_errors import APIError

DATA_URI = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,",
    re.IGNORECASE,
)
BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from, and how large it may be (encoded)."""

    allowed_root: Path | None
    allowed_url_hosts: frozenset[str]
    max_bytes: int
    url_timeout_s: float

    @classmethod
    def of(
        cls,
        allowed_root: Path | None,
        hosts: tuple[str, ...],
        max_bytes: int,
        url_timeout_s: float,
    ) -> MediaPolicy:
        root = None if allowed_root is None else Path(allowed_root).resolve(strict=True)
        return cls(root, frozenset(h.lower() for h in hosts), max_bytes, url_timeout_s)


def kind_of(ref: str) -> str:
    """``"data"``, ``"url"``, ``"file"`` or ``"path"`` for a reference string."""
    head = ref[:16].lower()
    if head.startswith("data:"):
        return "data"
    if head.startswith(("http://", "https://")):
        return "url"
    if head.startswith("file:"):
        return "file"
    if "://" in ref[:32]:
        return "scheme"
    return "path"


def decode_data_uri(uri: str, *, max_bytes: int, label: str) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded)."""
    match = DATA_URI.match(uri)
    if match is None:
        raise InvalidValueError(
            "is not a valid data URI (expected data:<type>;base64,<data>)", source=label
        )
    payload = uri[match.end() :]
    if match.group("b64"):
        return decode_base64(payload, max_bytes=max_bytes, label=label)
    data = unquote(payload).encode("utf-8", "surrogateescape")
    return _checked(data, max_bytes, label)


def decode_base64(text: str, *, max_bytes: int, label: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet); the size is checked before decoding."""
    compact = "".join(text.split())
    if (len(compact) // 4) * 3 > max_bytes + 3:
        raise InputTooLargeError(
            f"is about {(len(compact) // 4) * 3} bytes once decoded, over the limit of {max_bytes}",
            source=label,
        )
    if not BASE64_CHARS.match(compact) or len(compact) % 4 == 1:
        raise InvalidValueError("is not valid base64", source=label)
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValueError("is not valid base64", source=label) from None
    return _checked(data, max_bytes, label)


def _checked(data: bytes, max_bytes: int, label: str) -> bytes:
    if not data:
        raise EmptyInputError("is empty (0 bytes)", source=label)
    if len(data) > max_bytes:
        raise InputTooLargeError(
            f"is {len(data)} bytes, over the limit of {max_bytes}", source=label
        )
    return data


def resolve_path(ref: str, policy: MediaPolicy) -> Path:
    """A server path inside the allowed root (symlinks resolved first); 403 otherwise."""
    if policy.allowed_root is None:
        raise APIError(
            403,
            f"reading server paths is disabled ({ref[:100]!r}); send the content as a data URI "
            "or start the server with an allowed root",
            code="path_not_allowed",
        )
    text = ref
    if ref.lower().startswith("file:"):
        parts = urlsplit(ref)
        if parts.netloc not in ("", "localhost"):
            raise APIError(403, f"file URL on another host: {ref[:100]!r}", code="path_not_allowed")
        text = unquote(parts.path)
    if "\x00" in text:
        raise APIError(400, "a path must not contain NUL characters", code="bad_path")
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = policy.allowed_root / candidate
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as err:
        message = f"path {text[:100]!r} cannot be resolved ({err})"
        raise APIError(400, message, code="bad_path") from None
    if not resolved.is_relative_to(policy.allowed_root):
        raise APIError(
            403,
            f"path {text[:100]!r} is outside the allowed root",
            code="path_not_allowed",
        )
    return resolved


def check_url(url: str, policy: MediaPolicy) -> str:
    """``url`` when its scheme is http(s) and its host is allow-listed; 403 otherwise."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise APIError(400, f"malformed URL {url[:100]!r}", code="bad_url") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise APIError(400, f"unsupported URL {url[:100]!r}", code="bad_url")
    allowed = policy.allowed_url_hosts
    if host not in allowed and (port is None or f"{host}:{port}" not in allowed):
        raise APIError(
            403,
            f"fetching from {host!r} is not allowed; the server fetches only from allow-listed "
            "hosts (send the content as a data URI instead)",
            code="url_not_allowed",
        )
    return url


async def fetch_url(url: str, policy: MediaPolicy) -> bytes:
    """GET an allow-listed URL: no redirects, ``url_timeout_s``, at most ``max_bytes``."""
    import httpx

    check_url(url, policy)
    timeout = httpx.Timeout(policy.url_timeout_s)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise APIError(
                    400,
                    f"{url[:100]!r} answered HTTP {response.status_code}",
                    code="url_fetch_failed",
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise InputTooLargeError(
                    f"is {declared} bytes, over the limit of {policy.max_bytes}", source=url
                )
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise InputTooLargeError(
                        f"is over the limit of {policy.max_bytes} bytes", source=url
                    )
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise APIError(
            504, f"{url[:100]!r} did not answer within {policy.url_timeout_s:g} s", code="timeout"
        ) from None
    except httpx.HTTPError as err:
        raise APIError(400, f"cannot fetch {url[:100]!r}: {err}", code="url_fetch_failed") from None
    return _checked(b"".join(chunks), policy.max_bytes, url)


async def read_reference(ref: str, policy: MediaPolicy, *, label: str) -> bytes | Path:
    """The content a reference string names: bytes (data URI, URL) or a checked server path."""
    kind = kind_of(ref)
    if kind == "data":
        return decode_data_uri(ref, max_bytes=policy.max_bytes, label=label)
    if kind == "url":
        return await fetch_url(ref, policy)
    if kind == "scheme":
        raise APIError(400, f"unsupported URL scheme in {ref[:100]!r}", code="bad_url")
    return resolve_path(ref, policy)
