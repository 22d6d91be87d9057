"""``POST /v1/consistency``: do a text, an image and a recording describe the same thing?

Two or more inputs, taken as the other routes take them (text as a string; image and audio as
a data URI, an allow-listed URL, an allowed path, or ``{"data"|"url"|"path": ...}``), are
embedded by the server's aligned model through the same batchers as ``/v1/embeddings``; each
pair's score — the cosine similarity, or for text and image the logit of the model's matcher
when it has one — becomes a calibrated probability (``consistency.json`` beside the model) and
a verdict against the pair's threshold. The inputs are consistent only when every
pair is; the overall probability is the least of the pairs'.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, model_validator
from starlette.concurrency import run_in_threadpool

from omnifuse.serve.api_errors import APIError
from omnifuse.serve.inputs import decode, fetch_input
from omnifuse.serve.routes.embeddings import embed_prepared
from omnifuse.serve.schemas import Body, MediaValue, ModelName
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["consistency"])
MODALITIES = ("text", "image", "audio")


class ConsistencyRequest(Body):
    """Two or more of ``text``, ``image`` and ``audio``; ``model`` is the aligned model (or
    ``auto``)."""

    model: ModelName = "auto"
    text: str | None = None
    image: MediaValue | None = None
    audio: MediaValue | None = None

    @model_validator(mode="after")
    def _two_or_more(self) -> ConsistencyRequest:
        given = [m for m in MODALITIES if getattr(self, m) is not None]
        if len(given) < 2:
            raise ValueError(
                f"give two or more of text, image, audio to compare (got {given or 'none'})"
            )
        return self


class PairOut(BaseModel):
    a: str
    b: str
    similarity: float
    probability: float
    threshold: float
    scorer: Literal["cosine", "matcher", "transcript"] = "cosine"
    score: float
    heard: str | None = None
    verdict: Literal["consistent", "inconsistent"]


class ConsistencyResponse(BaseModel):
    object: Literal["consistency"] = "consistency"
    model: str
    pairs: list[PairOut]
    probability: float
    verdict: Literal["consistent", "inconsistent"]


def checker_of(state: ServerState, model: str) -> Any:
    """The aligned model's consistency checker (blocking: may load it)."""
    components = state.components
    if state.config.align_dir is None:
        raise APIError(
            404,
            "this server has no aligned model (start it with --align)",
            code="no_aligned_model",
        )
    if model not in ("auto", components.aligned_id):
        raise APIError(
            404,
            f"no aligned model {model!r}; available: {components.aligned_id}",
            code="model_not_found",
        )
    return components.consistency()


@router.post("/v1/consistency", response_model=ConsistencyResponse)
async def check_consistency(body: ConsistencyRequest, request: Request) -> ConsistencyResponse:
    """A calibrated probability per pair of inputs that they describe the same thing, its
    verdict, and the overall verdict."""
    state = state_of(request)
    checker = await run_in_threadpool(checker_of, state, body.model)
    inputs = {m: getattr(body, m) for m in MODALITIES if getattr(body, m) is not None}
    checker.require(inputs)
    embedder = state.components.embedder(state.components.aligned_id)
    sources = {m: await fetch_input(m, v, state.policy, label=m) for m, v in inputs.items()}

    def prepare() -> tuple[dict[str, Any], dict[str, Any]]:
        raws = {m: decode(m, s, state.decode_limits, label=m) for m, s in sources.items()}
        return raws, {m: embedder.prepare(m, raw) for m, raw in raws.items()}

    raws, prepared = await run_in_threadpool(prepare)
    vectors = await asyncio.gather(
        *(embed_prepared(state, embedder, m, [item]) for m, item in prepared.items())
    )
    embedded = {m: v[0] for m, v in zip(prepared, vectors, strict=True)}
    result = await run_in_threadpool(checker.check_embedded, embedded, raws)
    out = result.to_dict()
    return ConsistencyResponse(
        model=embedder.id,
        pairs=[PairOut(**pair) for pair in out["pairs"]],
        probability=out["probability"],
        verdict=out["verdict"],
    )
