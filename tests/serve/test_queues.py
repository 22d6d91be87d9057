"""Several conversations at once: every chat model decodes on its own FIFO queue while perception,
transcription and embeddings run beside it, and a request without ``max_tokens`` gets the
default budget cut to the server's cap.

The server chats through :class:`~web_fixtures.SlowLLM` (the real llama.cpp Gemma with every
piece held for a while), so an answer stays in flight long enough to watch what runs beside it.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serve_kit import ServeData
from web_fixtures import PIECE_DELAY_S, SLOW_LLM, SlowLLM, registered_llm

from omnifuse.serve import ServeConfig, ServeLimits
from omnifuse.serve.components import Components
from omnifuse.serve.runner import BackgroundServer

CAP = 4
"""The server's token cap, below the assistant's default budget (64)."""


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    config = ServeConfig(
        port=0, llm=SLOW_LLM, limits=ServeLimits(max_tokens=CAP, request_timeout_s=120.0)
    )
    with registered_llm(SLOW_LLM, SlowLLM), BackgroundServer(config) as running:
        yield running.url


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent-event response, up to ``[DONE]``."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


def chat_body(content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model": SLOW_LLM,
        "stream": True,
        "stop": [],
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


class Recorded:
    """One streamed answer read on a thread: when its opening chunk, its first words and its
    end arrived, how many pieces it had and how it finished."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.url = url
        self.body = body
        self.opened = threading.Event()
        self.first_words = threading.Event()
        self.times: dict[str, float] = {}
        self.pieces = 0
        self.finish: str | None = None
        self.context: str | None = None
        self.thread = threading.Thread(target=self.read, daemon=True)

    def read(self) -> None:
        with (
            httpx.Client(base_url=self.url, timeout=180.0) as http,
            http.stream("POST", "/v1/chat/completions", json=self.body) as response,
        ):
            assert response.status_code == 200
            for payload in events(response):
                now = time.monotonic()
                if "omnifuse" in payload and not self.opened.is_set():
                    self.context = payload["omnifuse"]["context"]
                    self.times["opened"] = now
                    self.opened.set()
                choice = payload["choices"][0]
                if choice["delta"].get("content"):
                    self.pieces += 1
                    self.times.setdefault("first_words", now)
                    self.first_words.set()
                if choice["finish_reason"]:
                    self.finish = choice["finish_reason"]
        self.times["ended"] = time.monotonic()

    def start(self) -> Recorded:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(timeout=180)
        assert not self.thread.is_alive()


def test_other_work_runs_beside_a_generation_and_answers_queue_in_order(
    slow_url: str, serve_data: ServeData
) -> None:
    row = next(r for r in serve_data.speech_rows() if r["text"] == "ten of clubs")
    audio = (serve_data.speech / str(row["audio"])).read_bytes()
    with httpx.Client(base_url=slow_url, timeout=180.0) as http:
        warm = chat_body([{"type": "text", "text": "Hi"}, image_part()], max_tokens=1)
        assert http.post("/v1/chat/completions", json=warm).status_code == 200
        heard = transcribe(http, audio)
        assert heard.status_code == 200

        story = "Tell me a long story about a red circle and a blue square."
        first = Recorded(slow_url, chat_body(story)).start()  # no max_tokens: the cap's budget
        assert first.first_words.wait(timeout=120)
        second = Recorded(
            slow_url, chat_body([{"type": "text", "text": "What is this?"}, image_part()])
        ).start()
        assert second.opened.wait(timeout=120)  # the image was perceived ...
        embedded = http.post("/v1/embeddings", json={"model": "minilm", "input": "a red square"})
        transcribed = transcribe(http, audio)
        others_done = time.monotonic()
        first.join()
        second.join()

    assert embedded.status_code == 200 and transcribed.json() == heard.json()
    assert second.context is not None and second.context.startswith("Image:")
    # ... while the first answer was still being decoded, as were the embedding and transcript,
    assert max(second.times["opened"], others_done) < first.times["ended"]
    # and the second answer's words came once the model had finished the first.
    assert second.times["first_words"] >= first.times["ended"] - PIECE_DELAY_S
    assert first.finish == second.finish == "stop"
    assert 2 <= first.pieces <= CAP  # the default budget (64 tokens) cut to the cap


def image_part() -> dict[str, Any]:
    """A red square on white, as a data URI."""
    from PIL import Image

    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste((220, 20, 20), (24, 24, 72, 72))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def transcribe(http: httpx.Client, audio: bytes) -> httpx.Response:
    files = {"file": ("ten.wav", audio, "audio/wav")}
    return http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})


def test_only_a_budget_the_client_asked_for_can_be_over_the_cap(slow_url: str) -> None:
    body = chat_body("Hi", max_tokens=CAP + 1, stream=False)
    response = httpx.post(f"{slow_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 422
    assert f"over this server's limit of {CAP}" in response.json()["error"]["message"]


def test_each_model_has_its_own_first_in_first_out_queue() -> None:
    components = Components(ServeConfig())
    gemma, other = components.model_queue("gemma"), components.model_queue("other")
    assert components.model_queue("gemma") is gemma and other is not gemma
    release = threading.Event()
    order: list[str] = []
    try:
        busy = gemma.submit(release.wait, 30)
        queued = gemma.submit(order.append, "gemma, second")
        beside = other.submit(order.append, "other")
        beside.result(timeout=10)  # runs while gemma is busy
        assert order == ["other"] and not busy.done() and not queued.done()
        release.set()
        queued.result(timeout=10)
        assert order == ["other", "gemma, second"]
    finally:
        release.set()
        gemma.shutdown(wait=True)
        other.shutdown(wait=True)
