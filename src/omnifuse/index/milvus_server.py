"""A Milvus server as the home of an index: made, found and reopened by URI and collection.

The collection carries the index's description (dimension, metric, options, attributes) in its
``omnifuse.index`` property, so any process that can reach the server opens the same index with
nothing but ``uri`` and ``collection``: several ``omnifuse serve`` replicas share it this way.
"""

from __future__ import annotations

import json
import os
from typing import Any

from omnifuse.errors import InputNotFoundError, ManifestError
from omnifuse.index.base import (
    IndexSpec,
    IndexUnavailableError,
    check_dim_metric,
    check_runtime_options,
)
from omnifuse.index.milvus_backend import (
    CONNECT_FAILED,
    DEFAULTS,
    RUNTIME_KEYS,
    SPEC_PROPERTY,
    TOKEN_ENV,
    MilvusBackendError,
    MilvusIndex,
    connect_client,
    pymilvus_module,
)

SERVER_SCHEMES = ("http://", "https://", "tcp://")


def is_server_uri(location: object) -> bool:
    """Whether ``location`` names a Milvus server (``http://host:19530``) rather than a folder."""
    return isinstance(location, str) and location.lower().startswith(SERVER_SCHEMES)


def create_on_server(
    uri: str,
    *,
    dim: int,
    metric: str = "ip",
    collection: str = DEFAULTS["collection"],
    attributes: dict[str, Any] | None = None,
    **config: Any,
) -> MilvusIndex:
    """A new collection on the Milvus server at ``uri``, described by its own properties."""
    check_dim_metric(dim, metric)
    spec = IndexSpec(
        "milvus", dim, metric, {**config, "uri": uri, "collection": collection}, attributes or {}
    )
    return MilvusIndex.create_new(None, spec)


def open_on_server(
    uri: str,
    *,
    collection: str = DEFAULTS["collection"],
    read_only: bool = False,
    **overrides: Any,
) -> MilvusIndex:
    """The omnifuse collection ``collection`` on the Milvus server at ``uri``."""
    check_runtime_options(overrides, RUNTIME_KEYS)
    token = str(overrides.get("token", "") or os.environ.get(TOKEN_ENV, ""))
    client = connect_client(uri, token)
    try:
        spec = _stored_spec(client, uri, collection)
    finally:
        client.close()
    spec.config = {**spec.config, "uri": uri, "collection": collection}
    return MilvusIndex.open_existing(None, spec, read_only=read_only, **overrides)


def _stored_spec(client: Any, uri: str, collection: str) -> IndexSpec:
    """The description omnifuse stored in the collection's properties when it made it."""
    pymilvus = pymilvus_module()
    where = f"{uri} (collection {collection})"
    try:
        if not client.has_collection(collection):
            raise InputNotFoundError("no such collection on the Milvus server", source=where)
        raw = client.describe_collection(collection).get("properties", {}).get(SPEC_PROPERTY)
    except pymilvus.MilvusException as err:
        if err.code == CONNECT_FAILED:
            raise IndexUnavailableError(f"no Milvus server answers at {uri}") from err
        raise MilvusBackendError(f"milvus describe_collection failed: {err.message}") from err
    if not raw:
        raise InputNotFoundError(
            f"not an omnifuse index (no {SPEC_PROPERTY!r} collection property)", source=where
        )
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise ManifestError(f"unreadable index description: {err}", source=where) from err
    if not isinstance(data, dict):
        raise ManifestError("index description is not a JSON object", source=where)
    return IndexSpec.from_dict(data, where)
