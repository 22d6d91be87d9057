"""Content keys and encoder fingerprints: what makes two cached features the same feature.

A key is the SHA-256 of an item's content (the UTF-8 of a text, the bytes of a media file), so
identical content is encoded once however many manifest lines hold it, and a renamed file keeps
its features. A fingerprint is the SHA-256 of everything that decides what an encoder outputs
(registry name, config, compute dtype and the hash of its weights), so a cache never mixes
features of two different encoders under one column.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from omnifuse.encoders.base import DTYPES, Encoder, encoders
from omnifuse.errors import InputNotFoundError, InvalidValueError

_READ_CHUNK = 1 << 20


def text_key(text: str) -> str:
    """Key of a text item: the SHA-256 of its UTF-8 bytes (lone surrogates, which a JSON manifest
    can hold and the encoder will reject, are hashed as they are rather than failing here)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_key(path: str | Path, *, modality: str | None = None) -> str:
    """Key of a media file: the SHA-256 of its bytes; a missing file is an input error."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputNotFoundError("file not found", source=path, modality=modality) from None
    except IsADirectoryError:
        raise InputNotFoundError("not a regular file", source=path, modality=modality) from None
    return digest.hexdigest()


def content_key(raw: Any, kind: str) -> str:
    """Key of a manifest value: text columns hold the text, media columns a file path, and
    inline values (a series' numbers, a table record) are keyed by their canonical JSON."""
    if kind == "text":
        return text_key(raw)
    if isinstance(raw, str):
        return file_key(raw, modality=kind)
    return inline_key(raw, kind)


def inline_key(raw: Any, kind: str) -> str:
    """Key of a value held inside the manifest: the SHA-256 of ``kind`` and its sorted JSON, so
    equal records share features and a record never collides with a file of the same bytes."""
    try:
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as err:
        raise InvalidValueError(f"cannot key this value: {err}", modality=kind) from None
    return hashlib.sha256(f"{kind}\n{canonical}".encode()).hexdigest()


def state_hash(module: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of every tensor of the state dict."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def registered_name(encoder: Encoder) -> str | None:
    """The registry name whose factory is the encoder's class, if there is one."""
    for name in encoders.list():
        if encoders.get(name) is type(encoder):
            return name
    return None


def dtype_name(encoder: Encoder) -> str:
    return next(k for k, v in DTYPES.items() if v == encoder.compute_dtype)


def fingerprint_fields(
    encoder: Encoder, name: str | None = None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What identifies the encoder's outputs, as JSON-ready fields.

    ``device`` is left out on purpose: the same weights on CPU or GPU give the same features up
    to rounding. An encoder passed as an object has no known config, so its class and module
    structure (``repr``) stand in for it.
    """
    fields: dict[str, Any] = {
        "encoder": name or registered_name(encoder) or type(encoder).__qualname__,
        "config": {k: v for k, v in sorted((config or {}).items()) if k not in ("device", "dtype")},
        "dtype": dtype_name(encoder),
        "weights": state_hash(encoder),
    }
    if config is None:
        fields["class"] = f"{type(encoder).__module__}.{type(encoder).__qualname__}"
        fields["structure"] = repr(encoder)
    return fields


def fingerprint(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
