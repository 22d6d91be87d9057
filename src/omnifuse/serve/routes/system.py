"""``GET /v1/models``, ``/v1/models/{id}``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

import omnifuse
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.schemas import Health, ModelCard, ModelList
from omnifuse.serve.state import ServerState, state_of

router = APIRouter()


def model_cards(state: ServerState) -> list[ModelCard]:
    """Every model this server can run, loaded or not (fusion configs are read, not loaded)."""
    from omnifuse.models import read_config
    from omnifuse.models.encoders import encoder_kind

    components = state.components
    loaded = set(components.loaded_names())
    cards = []
    for modality, name in state.config.encoders.items():
        key = f"embedder:{name}"
        dim = components.embedder(name).dim if key in loaded else None
        cards.append(
            ModelCard(
                id=name, kind="embedding", modalities=[modality], dim=dim, loaded=dim is not None
            )
        )
    if state.config.align_dir is not None:
        aligned = components.aligned_id
        is_loaded = f"aligned:{aligned}" in loaded
        embedder = components.embedder(aligned) if is_loaded else None
        cards.append(
            ModelCard(
                id=aligned,
                kind="embedding",
                modalities=list(embedder.modalities) if embedder else [],
                dim=embedder.dim if embedder else None,
                loaded=is_loaded,
            )
        )
    for name, folder in components.model_folders().items():
        try:
            config = read_config(folder)
        except Exception:  # an unreadable folder is listed by /healthz, not here
            continue
        kinds = sorted(
            {encoder_kind(spec) for spec in config.encoders.values()} or set(config.modalities)
        )
        cards.append(
            ModelCard(
                id=name,
                kind="fusion",
                modalities=kinds,
                task=config.task,
                classes=list(config.classes),
                loaded=f"model:{name}" in loaded,
            )
        )
    cards.append(ModelCard(id=state.config.llm, kind="chat", loaded="llm" in loaded))
    for asr in components.asr_ids():
        cards.append(ModelCard(id=asr, kind="transcription", modalities=["audio"]))
    return cards


@router.get("/v1/models", response_model=ModelList, tags=["models"])
async def list_models(request: Request) -> ModelList:
    """The embedding, fusion, chat and transcription models of this server."""
    return ModelList(data=await run_in_threadpool(model_cards, state_of(request)))


@router.get("/v1/models/{model_id}", response_model=ModelCard, tags=["models"])
async def get_model(model_id: str, request: Request) -> ModelCard:
    for card in await run_in_threadpool(model_cards, state_of(request)):
        if card.id == model_id:
            return card
    raise APIError(404, f"no model {model_id!r}", code="model_not_found")


@router.get("/healthz", response_model=Health, tags=["system"])
async def healthz(request: Request) -> Health:
    """Liveness: always ``ok`` while the server answers, with what it has loaded."""
    state = state_of(request)
    components = state.components
    return Health(
        version=omnifuse.__version__,
        loaded=components.loaded_names(),
        models=len(components.model_folders()),
        index=state.config.has_index,
        auth=bool(state.config.api_keys),
        queues=components.queue_depths(),
    )


@router.get("/metrics", tags=["system"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by route and status, latencies, batch sizes, queues."""
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
