"""Request inputs → what encoders accept: text, PIL images, ``(wave, 16000)`` pairs.

Fetching (data URIs, allow-listed URLs, allowed paths) is asynchronous and happens first;
decoding is blocking CPU work and runs on a worker thread with the server's decode limits, so a
hostile file is refused from its header before it costs memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnifuse.io import DecodeLimits, load_audio, load_image, load_series, load_text
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.media import (
    MediaPolicy,
    decode_base64,
    decode_data_uri,
    kind_of,
    read_reference,
    resolve_path,
)
from omnifuse.serve.schemas import MediaRef

SAMPLE_RATE = 16000
INLINE_KINDS = ("series", "tabular")

Source = bytes | Path


async def fetch(value: str | MediaRef, policy: MediaPolicy, *, label: str) -> Source:
    """The bytes (or checked server path) a media reference names."""
    if isinstance(value, MediaRef):
        if value.data is not None:
            if kind_of(value.data) == "data":
                return decode_data_uri(value.data, max_bytes=policy.max_bytes, label=label)
            return decode_base64(value.data, max_bytes=policy.max_bytes, label=label)
        if value.url is not None:
            return await read_reference(value.url, policy, label=label)
        assert value.path is not None
        return resolve_path(value.path, policy)
    return await read_reference(value, policy, label=label)


async def fetch_input(
    modality: str,
    value: str | MediaRef | list[Any] | dict[str, Any],
    policy: MediaPolicy,
    *,
    label: str,
) -> Any:
    """Text stays text (a plain string is the text itself), inline values (a series' numbers, a
    table record) stay as they are; media is fetched."""
    if isinstance(value, (list, dict)):
        if modality not in INLINE_KINDS:
            raise APIError(
                400,
                f"{label}: a {modality} input is a media reference, not JSON values",
                code="bad_input",
            )
        return value
    if modality == "text" and isinstance(value, str):
        return value
    if modality == "tabular":
        raise APIError(400, f"{label}: a table record is a JSON object", code="bad_input")
    return await fetch(value, policy, label=label)


def decode(modality: str, source: Any, limits: DecodeLimits, *, label: str) -> Any:
    """Decode one fetched input for an encoder of ``modality`` (blocking)."""
    if modality == "text":
        return load_text(source, limits=limits, name=label)
    if modality == "series":
        return load_series(source, limits=limits, name=label)
    if modality == "tabular":
        return source  # the encoder checks the record against its declared columns
    if isinstance(source, str):
        raise APIError(400, f"{label}: expected a media reference", code="bad_input")
    if modality == "image":
        return load_image(source, limits=limits, name=label)
    if modality == "audio":
        return (
            load_audio(source, sample_rate=SAMPLE_RATE, limits=limits, name=label),
            SAMPLE_RATE,
        )
    if modality == "video":
        return source
    raise APIError(400, f"{label}: unsupported modality {modality!r}", code="unsupported_modality")
