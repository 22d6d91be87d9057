"""``POST /v1/images/generations``: images from a prompt, in OpenAI's request and response shape.

The server's generator (``serve --generator DIR``) draws ``n`` images of the prompt and returns
them as base64 PNGs (``response_format: b64_json``; URLs are not offered: the server keeps no
files). Beyond OpenAI's fields, ``steps``, ``guidance``, ``sampler`` (``euler`` or ``heun``) and
``seed`` set the sampling; the same prompt, settings and seed give the same pixels, and without a
seed each call draws a new one. Generation is CPU work on a worker thread, one request at a time
per generator, so the other routes keep answering while it runs.
"""

from __future__ import annotations

import base64
import io
import secrets
import threading
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnifuse.generate.flow import Sampler
from omnifuse.generate.model import DEFAULT_GUIDANCE
from omnifuse.serve.api_errors import APIError
from omnifuse.serve.schemas import Body, ModelName
from omnifuse.serve.state import state_of

router = APIRouter(tags=["images"])
_LOCK = threading.Lock()


class ImageGenerationRequest(Body):
    """OpenAI's fields (``model``, ``prompt``, ``n``, ``size``, ``response_format``) plus the
    sampling's ``steps``, ``guidance``, ``sampler`` and ``seed``."""

    prompt: str = Field(max_length=4000)
    model: ModelName = "auto"
    n: int = Field(default=1, ge=1, le=8)
    size: str | None = Field(default=None, max_length=20)
    response_format: Literal["b64_json"] = "b64_json"
    steps: int = Field(default=30, ge=1, le=200)
    guidance: float = Field(default=DEFAULT_GUIDANCE, ge=0.0, le=50.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    sampler: Sampler = "euler"


class GeneratedImage(BaseModel):
    b64_json: str
    revised_prompt: str | None = None


class ImageGenerationResponse(BaseModel):
    created: int
    data: list[GeneratedImage]


def png_base64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@router.post("/v1/images/generations", response_model=ImageGenerationResponse)
async def generate_images(
    body: ImageGenerationRequest, request: Request
) -> ImageGenerationResponse:
    """Draw ``n`` images of ``prompt`` with the server's text-to-image generator."""
    state = state_of(request)
    name = state.components.generator_id
    if name is None:
        raise APIError(
            404,
            "this server has no image generator (serve --generator DIR)",
            code="model_not_found",
        )
    if body.model not in ("auto", name):
        raise APIError(
            404, f"no generator {body.model!r}; this server has {name!r}", code="model_not_found"
        )
    generator = await run_in_threadpool(state.components.generator)
    side = generator.config.unet.image_size
    if body.size is not None and body.size != f"{side}x{side}":
        raise APIError(
            400,
            f"size {body.size!r}: this generator draws {side}x{side} images",
            code="unsupported_size",
        )
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31 - body.n)

    def draw() -> list[str]:
        with _LOCK:
            return [
                png_base64(
                    generator.generate(
                        [body.prompt],
                        steps=body.steps,
                        guidance=body.guidance,
                        seed=seed + k,
                        sampler=body.sampler,
                    )[0]
                )
                for k in range(body.n)
            ]

    images = await run_in_threadpool(draw)
    return ImageGenerationResponse(
        created=int(time.time()), data=[GeneratedImage(b64_json=b) for b in images]
    )
