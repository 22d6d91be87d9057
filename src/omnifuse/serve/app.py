"""``create_app(config)``: the FastAPI application with every route, guard and error handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import omnifuse
from omnifuse.errors import ServiceUnavailableError
from omnifuse.serve.api_errors import install_error_handlers
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.guard import Guard
from omnifuse.serve.hosts import HostAllowList
from omnifuse.serve.memory import level_heap
from omnifuse.serve.openapi import declare_errors
from omnifuse.serve.routes import (
    audio,
    chat,
    consistency,
    embeddings,
    experiments,
    images,
    items,
    predict,
    search,
    speech,
    system,
)
from omnifuse.serve.state import ServerState
from omnifuse.serve.web import router as web_router

log = logging.getLogger("omnifuse.serve")

DESCRIPTION = (
    "Embeddings, fusion-model predictions, cross-modal search, cross-modal consistency, "
    "multimodal chat, speech transcription and image generation. "
    'Errors are JSON: {"error": {"message", "type", "code"}}.'
)


def preload(state: ServerState) -> None:
    """Load every configured component now (blocking), so first requests are fast."""
    components = state.components
    for name in components.embedder_ids():
        components.embedder(name)
    for name in components.model_folders():
        components.predictor(name)
    if state.config.has_index:
        try:
            components.index()
        except ServiceUnavailableError as err:  # the server may come up later; serve meanwhile
            log.warning("the index is not loaded yet: %s", err)


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The API server for ``config`` (validated first; unsafe settings raise ConfigError)."""
    config = (config or ServeConfig()).validate()
    state = ServerState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.preload:
            await run_in_threadpool(preload, state)
        level_heap()
        try:
            yield
        finally:
            await state.components.close()

    app = FastAPI(
        title="omnifuse",
        version=omnifuse.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.omnifuse = state
    install_error_handlers(app)
    declare_errors(app)
    for module in (embeddings, predict, search, chat, audio, consistency, images, system):
        app.include_router(module.router)
    for module in (items, speech, experiments):
        app.include_router(module.router)
    app.include_router(web_router)
    app.add_middleware(
        Guard,
        api_keys=config.api_keys,
        max_body_bytes=config.limits.max_body_bytes,
        metrics=state.metrics,
        hosts=HostAllowList(config.host, config.allowed_hosts),
    )
    return app
