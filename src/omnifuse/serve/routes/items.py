"""``GET /v1/items/image?id=ITEM``: the picture of an indexed item, for search results.

An item's picture is, in this order, the file its metadata names under ``image``, its
``source`` when the item itself is an image (``modality: image``), or a ``thumbnail`` data URI
(as ``omnifuse demo search`` stores). A file is read only under the server's allowed root
(the same rule as media paths in requests: 403 outside it or when the server has none), only up
to the media size limit (413), and only when its bytes are an image (415). URLs are never
fetched here. ``size`` scales the picture to fit a square of that many pixels (a JPEG), which
is what a grid of results needs; without it, a format every browser shows is sent as it is.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from omnifuse.io import load_image
from omnifuse.io.sniff import IMAGE_FORMATS, describe_format, sniff_format
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.media import MediaPolicy, decode_data_uri, kind_of, resolve_path
from omnifuse.serve.openapi import ERROR_REF
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["search"])

WEB_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
"""Formats sent as they are; others (TIFF) are converted to JPEG."""
IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}
LABEL = "item image"


def image_reference(item_id: str, metadata: dict[str, Any]) -> str:
    """Where the item's picture is: a path or a data URI (404 when the item has none)."""
    image = metadata.get("image")
    if isinstance(image, str) and image:
        return image
    source = metadata.get("source")
    if metadata.get("modality") == "image" and isinstance(source, str) and source:
        return source
    thumbnail = metadata.get("thumbnail")
    if isinstance(thumbnail, str) and thumbnail[:11].lower() == "data:image/":
        return thumbnail
    kind = metadata.get("modality", "unknown")
    raise APIError(404, f"item {item_id[:100]!r} has no image (a {kind} item)", code="no_image")


def image_bytes(reference: str, policy: MediaPolicy) -> bytes:
    """The encoded picture a reference names, checked: inside the root, small enough, an
    image by its bytes."""
    kind = kind_of(reference)
    if kind == "data":
        data = decode_data_uri(reference, max_bytes=policy.max_bytes, label=LABEL)
    elif kind in ("path", "file"):
        path = resolve_path(reference, policy)
        if not path.is_file():
            raise APIError(404, f"the item's image file is missing: {path.name!r}", code="no_file")
        size = path.stat().st_size
        if size > policy.max_bytes:
            raise APIError(
                413, f"the item's image is {size} bytes, over the limit of {policy.max_bytes}"
            )
        with path.open("rb") as handle:
            data = handle.read(policy.max_bytes + 1)
    else:
        raise APIError(
            404, "the item's image is a URL; this route serves files only", code="no_image"
        )
    found = sniff_format(data)
    if found not in IMAGE_FORMATS:
        what = "unrecognised data" if found is None else describe_format(found)
        raise APIError(415, f"the item's image file is not an image ({what})")
    return data


def check_pixels(data: bytes, state: ServerState) -> None:
    """Refuse (413) a picture whose header announces more pixels than the server decodes: the
    browser would have to decode it, whatever its byte size."""
    from PIL import Image, UnidentifiedImageError

    limit = state.decode_limits.max_pixels
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise APIError(413, f"the item's image has over {limit} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise APIError(415, "the item's image cannot be read") from None
    if width * height > limit:
        raise APIError(
            413, f"the item's image is {width}×{height} pixels, over the limit of {limit}"
        )


def scaled_jpeg(data: bytes, size: int, state: ServerState) -> bytes:
    """``data`` decoded under the server's limits and scaled to fit ``size``×``size``."""
    image = load_image(data, limits=state.decode_limits, name=LABEL)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@router.get(
    "/v1/items/image",
    response_class=Response,
    responses={
        200: {
            "content": {kind: {} for kind in WEB_FORMATS.values()},
            "description": "The picture.",
        },
        415: {
            "description": "The item's file is not an image",
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
        },
    },
)
async def item_image(
    request: Request,
    item_id: Annotated[str, Query(alias="id", min_length=1, max_length=512)],
    size: Annotated[int | None, Query(ge=16, le=1024)] = None,
) -> Response:
    """The picture of indexed item ``id`` (as ``/v1/search`` returns it), optionally scaled to
    fit a ``size``-pixel square."""
    state = state_of(request)
    index = await run_in_threadpool(state.components.index)
    (found,) = await state.components.serial("index", index.get, [item_id])
    if found is None:
        raise APIError(404, f"no indexed item {item_id[:100]!r}", code="item_not_found")
    reference = image_reference(item_id, dict(found.get("metadata") or {}))

    def read() -> tuple[bytes, str]:
        data = image_bytes(reference, state.policy)
        found_format = sniff_format(data) or ""
        if size is None and found_format in WEB_FORMATS:
            check_pixels(data, state)
            return data, WEB_FORMATS[found_format]
        return scaled_jpeg(data, size or 1024, state), "image/jpeg"

    data, media_type = await run_in_threadpool(read)
    return Response(data, media_type=media_type, headers=IMAGE_HEADERS)
