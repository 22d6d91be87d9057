"""``POST /v1/search``: nearest indexed items to a text, image or audio query, with filters."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from omnifuse.errors import OmnifuseError
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.embedders import Embedder
from omnifuse.serve.inputs import decode, fetch_input
from omnifuse.serve.routes.embeddings import embed_prepared
from omnifuse.serve.schemas import (
    MediaRef,
    SearchHit,
    SearchQuery,
    SearchRequest,
    SearchResponse,
)
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["search"])


def query_of(body: SearchRequest) -> tuple[str, str | MediaRef]:
    if isinstance(body.query, str):
        return "text", body.query
    query: SearchQuery = body.query
    value = getattr(query, query.modality)
    return query.modality, value


def query_embedder(state: ServerState, modality: str, model: str, dim: int) -> Embedder:
    """The embedder whose vectors live in the index's space (blocking: may load it)."""
    components = state.components
    if model != "auto":
        chosen = components.embedder_for(modality, model)
    else:
        candidates = []
        if state.config.align_dir is not None:
            candidates.append(components.aligned_id)
        if modality in state.config.encoders:
            candidates.append(state.config.encoders[modality])
        usable = [
            e
            for e in (components.embedder(name) for name in candidates)
            if modality in e.modalities and e.dim == dim
        ]
        if not usable:
            raise APIError(
                400,
                f"no loaded model embeds {modality} into the index's {dim}-d space",
                code="unsupported_modality",
            )
        chosen = usable[0]
    if chosen.dim != dim:
        raise APIError(
            400,
            f"model {chosen.id!r} gives {chosen.dim}-d vectors; the index holds {dim}-d ones",
            code="dimension_mismatch",
        )
    return chosen


def run_search(index: Any, vector: np.ndarray, k: int, where: dict[str, Any] | None) -> list[Any]:
    try:
        return list(index.search(vector[None, :].astype(np.float32), k=k, filter=where)[0])
    except OmnifuseError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise APIError(400, f"invalid search: {err}", code="invalid_filter") from None


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, request: Request) -> SearchResponse:
    """Embed the query in the index's space and return the ``k`` nearest items (optionally
    filtered on metadata: equality, membership in a list, ``$gte``/``$gt``/``$lte``/``$lt``)."""
    state = state_of(request)
    if body.k > state.config.limits.max_k:
        raise APIError(422, f"k={body.k} is over the limit of {state.config.limits.max_k}")
    index = await run_in_threadpool(state.components.index)
    modality, value = query_of(body)
    embedder = await run_in_threadpool(query_embedder, state, modality, body.model, int(index.dim))
    source = await fetch_input(modality, value, state.policy, label="query")

    def prepare() -> Any:
        raw = decode(modality, source, state.decode_limits, label="query")
        return embedder.prepare(modality, raw)

    prepared = await run_in_threadpool(prepare)
    (vector,) = await embed_prepared(state, embedder, modality, [prepared])
    hits = await state.components.serial(
        "index", run_search, index, vector, body.k, body.filter or None
    )
    return SearchResponse(
        model=embedder.id,
        modality=modality,
        data=[
            SearchHit(id=str(h.id), score=float(h.score), metadata=dict(h.metadata or {}))
            for h in hits
        ],
    )
