"""Pieces shared by the browser tests and the API fuzzing: a world dataset, a small fusion model,
a caption index, the real app served by uvicorn on a free loopback port, and Chromium.

Everything is built from the package's own builders, encoders and index, offline; nothing here
stands in for a component of the server (the slow chat model is the real one, paced).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serve_kit import train_gated_model

from omnifuse.llm import LLM, ChatMessage, GenerationConfig, create_llm, llms

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # nothing but the page under test: no update, sync, telemetry, safe-browsing or
    # field-trial traffic, no first-run or default-app fetches
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--disable-field-trial-config",
    "--no-service-autorun",
]
"""Every Chromium the tests launch gets these (see :func:`launch_chromium`), stated here rather
than left to Playwright's defaults, which hold most of them today. No ``--disable-features``:
Playwright passes its own list (optimisation hints, network time, search preconnects...), and a
second one would replace it."""
WORLD_SIZE = 20
FUSION_MODEL = "world-vqa"
SLOW_LLM = "llama-cpp-slow"
PIECE_DELAY_S = 2.0
"""How long the slow chat model holds each piece: longer than the page and Playwright's polling
take to see the first words and click Stop, even on a busy machine."""


def build_world(out: Path) -> Path:
    """A 20-scene omnifuse world (images, captions, spoken questions) in ``out``."""
    from omnifuse.data.builders import build

    build("world", out, seed=0, size=WORLD_SIZE, questions_per_scene=1, video_clips=0)
    return out


def train_fusion_model(world: Path, out: Path) -> Path:
    """A small VQA fusion model (image + question text) trained briefly on cached features; its
    accuracy does not matter here, only that it answers and explains like any trained model."""
    encoders = {"image": {"name": "effnet-lite0", "image_size": 64}, "question": {"name": "minilm"}}
    manifest = world / "vqa.jsonl"
    train_gated_model(manifest, "answer", encoders, out, FUSION_MODEL, task="vqa", dim=64, epochs=2)
    shutil.rmtree(out / "cache")
    return out / "models"


def build_caption_index(world: Path, out: Path) -> Path:
    """A FAISS index of the world's captions embedded with MiniLM (the server's text encoder),
    each item carrying its caption, split and a thumbnail of its scene."""
    from omnifuse import encoders
    from omnifuse.cli.demo.search import read_rows, thumbnail
    from omnifuse.index import create_index

    rows = read_rows(world / "scenes.jsonl")
    encoder = encoders.create("minilm")
    vectors = encoder.encode([row["caption"] for row in rows]).pooled.float().numpy()
    vectors /= (vectors**2).sum(axis=1, keepdims=True) ** 0.5
    index = create_index(
        "faiss-flat",
        out,
        dim=vectors.shape[1],
        metric="ip",
        attributes={"encoder": "minilm", "modality": "text"},
    )
    metadata = [
        {
            "modality": "text",
            "source": row["caption"],
            "caption": row["caption"],
            "split": row["split"],
            "thumbnail": thumbnail(world / row["image"]),
        }
        for row in rows
    ]
    index.add([row["id"] for row in rows], vectors, metadata)
    index.close()
    return out


@dataclass(frozen=True)
class WebAssets:
    """What a test server is started with: the world, a models folder, an index of its own."""

    world: Path
    models: Path
    index: Path


def web_assets(basetemp: Path, out: Path) -> WebAssets:
    """The world, fusion model and caption index, built once per test session under
    ``basetemp``; ``out`` receives a private copy of the index (a server holds its index open
    for as long as it runs, and an in-process ASGI app may run until the session ends)."""
    shared = basetemp / "web-assets"
    ready = shared / "ready"
    if not ready.exists():
        shutil.rmtree(shared, ignore_errors=True)
        world = build_world(shared / "world")
        train_fusion_model(world, shared)
        build_caption_index(world, shared / "index")
        ready.touch()
    shutil.copytree(shared / "index", out / "index")
    return WebAssets(world=shared / "world", models=shared / "models", index=out / "index")


class SlowLLM(LLM):
    """The default backend (Gemma-3-270M through llama.cpp) with every streamed piece held for
    ``PIECE_DELAY_S``: after its first words an answer stays in flight at least that long, so
    the page's Stop button is always there to be clicked. Registered only for the server of
    the Stop test."""

    name = SLOW_LLM

    def __init__(self, **cfg: Any) -> None:
        self.inner = create_llm(**cfg)

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        return held(self.inner.stream(prompt, config))

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        return held(self.inner.chat_stream(messages, config))

    def close(self) -> None:
        self.inner.close()


def held(pieces: Iterator[str]) -> Iterator[str]:
    """``pieces``, each followed by a pause before the next one (or the end) is asked for."""
    for piece in pieces:
        yield piece
        time.sleep(PIECE_DELAY_S)


@contextmanager
def registered_llm(name: str, factory: type[LLM]) -> Iterator[None]:
    """``factory`` in the ``llms`` registry under ``name`` for the block only, so the rest of the
    session sees the built-in backends alone."""
    llms.load_builtins()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(llms._factories, name, factory)
        patch.setitem(llms._docs, name, str(factory.__doc__).splitlines()[0])
        yield


def web_app(config: Any) -> Any:
    """The real application of ``config`` (it serves the web page at ``/``)."""
    from omnifuse.serve import create_app

    return create_app(config)


def served_routes(app: Any) -> list[Any]:
    """Every route of ``app``, those of included routers among them (FastAPI ≥ 0.13x keeps an
    included router as one entry of ``app.routes``); each has ``path``, ``path_regex``,
    ``methods`` and ``include_in_schema``."""
    from fastapi import routing

    contexts = getattr(routing, "iter_route_contexts", None)
    return list(app.routes) if contexts is None else list(contexts(app.routes))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: Any, *, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def launch_chromium(playwright: Any, *extra_args: str) -> Any:
    """Debian's Chromium, headless, driven by Playwright."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args]
    )


def save_screenshot(page: Any, name: str, tmp_path: Path, request: Any) -> Path:
    """Screenshot of the whole page into ``test-artifacts/browser-<name>.png`` (kept after the
    run, git-ignored) and into the test's own temporary folder; the path is recorded as a
    property of the test (it appears in JUnit XML reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(target), full_page=True)
    shutil.copyfile(target, tmp_path / target.name)
    request.node.user_properties.append(("screenshot", str(target)))
    return target
