"""``POST /v1/embeddings``: OpenAI's embeddings endpoint, for text, images and audio."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from omnifuse.serve.api_errors import APIError
from omnifuse.serve.embedders import Embedder
from omnifuse.serve.inputs import decode, fetch_input
from omnifuse.serve.schemas import EmbeddingPart, EmbeddingsRequest, EmbeddingsResponse, MediaRef
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["embeddings"])
LIGHT_TEXTS = 4
LIGHT_CHARS = 2000


def input_items(body: EmbeddingsRequest) -> list[tuple[str, str | MediaRef]]:
    """``(modality, value)`` per input, in order."""
    raw = [body.input] if isinstance(body.input, str) else list(body.input)
    items: list[tuple[str, str | MediaRef]] = []
    for entry in raw:
        if isinstance(entry, str):
            items.append(("text", entry))
        else:
            items.append((entry.type, _part_value(entry)))
    return items


def _part_value(part: EmbeddingPart) -> str | MediaRef:
    if part.type == "text":
        assert part.text is not None
        return part.text
    return MediaRef(data=part.data, url=part.url, path=part.path)


async def embed_prepared(
    state: ServerState, embedder: Embedder, modality: str, prepared: Sequence[Any]
) -> list[np.ndarray]:
    """Vectors of prepared inputs, through the embedder's batcher for ``modality``."""

    def run(items: list[Any]) -> list[np.ndarray]:
        return list(embedder.run(modality, items))

    batcher = state.components.batcher(f"embed:{embedder.id}:{modality}", run)
    return await batcher.submit(prepared)


def prepare_all(
    state: ServerState,
    jobs: Sequence[tuple[Embedder, str, Any]],
) -> list[Any]:
    """Decode and preprocess every input (blocking; on a worker thread)."""
    out = []
    for i, (embedder, modality, source) in enumerate(jobs):
        raw = decode(modality, source, state.decode_limits, label=f"input[{i}]")
        out.append(embedder.prepare(modality, raw))
    return out


def is_light(jobs: Sequence[tuple[Embedder, str, Any]]) -> bool:
    """Whether preparing ``jobs`` is cheap enough to do on the event loop (a few short texts:
    tokenising them costs less than handing them to a thread)."""
    texts = [source for _, modality, source in jobs if modality == "text"]
    return len(texts) == len(jobs) <= LIGHT_TEXTS and sum(len(t) for t in texts) <= LIGHT_CHARS


def token_count(prepared: Any) -> int:
    ids = prepared.get("input_ids") if isinstance(prepared, dict) else None
    return len(ids) if ids is not None else 0


def encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()
    return list(np.asarray(vector, dtype=np.float32).tolist())


@router.post("/v1/embeddings", response_model=EmbeddingsResponse)
async def create_embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Embed each input; text inputs are strings, image and audio inputs are parts such as
    ``{"type": "image", "data": "data:image/png;base64,..."}``."""
    state = state_of(request)
    items = input_items(body)
    if not items:
        raise APIError(400, "input must hold at least one item", code="empty_input")
    if len(items) > state.config.limits.max_items:
        raise APIError(
            413,
            f"{len(items)} inputs; at most {state.config.limits.max_items} per request",
            code="too_many_inputs",
        )
    embedders = {}
    for modality in dict.fromkeys(m for m, _ in items):
        chosen = state.components.chosen_embedder(modality, body.model)
        if chosen is None:
            chosen = await run_in_threadpool(state.components.embedder_for, modality, body.model)
        embedders[modality] = chosen
    dims = {e.dim for e in embedders.values()}
    if body.dimensions is not None and dims != {body.dimensions}:
        raise APIError(
            400,
            f"dimensions={body.dimensions} is not available; the model gives {sorted(dims)}",
            code="unsupported_dimensions",
        )
    sources = [
        await fetch_input(m, v, state.policy, label=f"input[{i}]") for i, (m, v) in enumerate(items)
    ]
    jobs = [(embedders[m], m, s) for (m, _), s in zip(items, sources, strict=True)]
    if is_light(jobs):
        prepared = prepare_all(state, jobs)
    else:
        prepared = await run_in_threadpool(prepare_all, state, jobs)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (embedder, modality, _) in enumerate(jobs):
        groups.setdefault((embedder.id, modality), []).append(i)
    results = await asyncio.gather(
        *(
            embed_prepared(state, jobs[rows[0]][0], key[1], [prepared[i] for i in rows])
            for key, rows in groups.items()
        )
    )
    vectors: list[np.ndarray] = [np.empty(0)] * len(items)
    for rows, result in zip(groups.values(), results, strict=True):
        for i, vector in zip(rows, result, strict=True):
            vectors[i] = vector
    tokens = sum(token_count(p) for p in prepared)
    model = body.model if body.model != "auto" else ",".join(e.id for e in embedders.values())
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")
