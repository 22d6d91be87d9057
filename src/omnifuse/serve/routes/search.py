"""``POST /v1/search``: nearest indexed items to a text, image or audio query, with filters.

The query is embedded only by a model whose vectors share the index's space: the model the
index records (``attributes``: ``encoder`` or aligned ``model``, and the items' ``modality``),
else, for an index that records none, any model of the index's dimension.
"""

from __future__ import annotations

from pathlib import Path
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


def query_embedder(state: ServerState, modality: str, model: str, index: Any) -> Embedder:
    """The embedder whose vectors live in the index's space (blocking: may load it): of the
    index's dimension and, when the index records them, its model and the modality of its
    items. Under ``"auto"`` the first such one of the aligned model and the configured
    encoder of ``modality``."""
    components = state.components
    dim = int(index.dim)
    attributes = index.attributes
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
            if modality in e.modalities
            and e.dim == dim
            and space_mismatch(state, e, attributes) is None
        ]
        if not usable:
            raise APIError(
                400,
                f"no loaded model embeds {modality} into the index's space "
                f"({recorded_space(attributes, dim)})",
                code="unsupported_modality",
            )
        chosen = usable[0]
    mismatch = space_mismatch(state, chosen, attributes)
    if mismatch is not None:
        raise APIError(
            400,
            f"model {chosen.id!r} cannot query this index: {mismatch} "
            f"(the index holds {recorded_space(attributes, dim)})",
            code="index_model_mismatch",
        )
    if chosen.dim != dim:
        raise APIError(
            400,
            f"model {chosen.id!r} gives {chosen.dim}-d vectors; the index holds {dim}-d ones",
            code="dimension_mismatch",
        )
    return chosen


def space_mismatch(
    state: ServerState, embedder: Embedder, attributes: dict[str, Any]
) -> str | None:
    """Why ``embedder``'s vectors are not in the space the index records, or None.

    An index may record the pretrained ``encoder`` (a name) or the aligned ``model`` (a
    folder) that made its vectors, and the ``modality`` of its items. A vector of another
    model lands in another space even when the dimensions agree, so search results would be
    noise: the query must come from the recorded model, which must embed the items' modality.
    An index that records nothing is checked by dimension alone.
    """
    encoder = text_attribute(attributes, "encoder")
    aligned = text_attribute(attributes, "model")
    items = text_attribute(attributes, "modality")
    if encoder is not None and (embedder.kind != "encoder" or embedder.id != encoder):
        return f"its vectors come from encoder {encoder!r}"
    if aligned is not None and not is_recorded_aligned(state, embedder, Path(aligned)):
        return f"its vectors come from the aligned model {aligned}"
    if items is not None and items not in embedder.modalities:
        return f"it does not embed {items}, the modality of the indexed items"
    return None


def is_recorded_aligned(state: ServerState, embedder: Embedder, recorded: Path) -> bool:
    """Whether ``embedder`` is the served aligned model and its folder is ``recorded`` (the
    same folder; where ``recorded`` is not on this machine, a folder of the same name)."""
    served = state.config.align_dir
    if embedder.kind != "aligned" or served is None:
        return False
    try:
        return recorded.samefile(served)
    except OSError:  # recorded where the index was built, another machine or mount
        return not recorded.exists() and recorded.name == Path(served).name


def recorded_space(attributes: dict[str, Any], dim: int) -> str:
    """The index's space in words: ``384-d vectors of encoder 'minilm', text items``."""
    words = [f"{dim}-d vectors"]
    encoder = text_attribute(attributes, "encoder")
    aligned = text_attribute(attributes, "model")
    items = text_attribute(attributes, "modality")
    if encoder is not None:
        words[0] += f" of encoder {encoder!r}"
    elif aligned is not None:
        words[0] += f" of aligned model {Path(aligned).name!r}"
    if items is not None:
        words.append(f"{items} items")
    return ", ".join(words)


def text_attribute(attributes: dict[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None


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
    embedder = await run_in_threadpool(query_embedder, state, modality, body.model, index)
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
