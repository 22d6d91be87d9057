"""The official ``openai`` client against the running server: embeddings (equal to in-process
encoding), chat about an image with the real llama.cpp Gemma model (plain and streamed), and
transcription of a real speech-test utterance."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import numpy as np
import openai
import pytest
from PIL import Image
from serve_kit import ServeData

from omnifuse.encoders import create
from omnifuse.serve.runner import BackgroundServer


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=180.0
    ) as oai:
        yield oai


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def test_embeddings_equal_in_process_encoding(client: openai.OpenAI) -> None:
    texts = ["a red circle on a white background", "the train leaves at noon", "ok"]
    response = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    expected = create("minilm").encode(texts).pooled.numpy()
    for result in (response, floats):
        got = np.array([item.embedding for item in result.data], dtype=np.float32)
        assert got.shape == (3, 384)
        assert [item.index for item in result.data] == [0, 1, 2]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert response.model == "minilm"
    assert response.usage.prompt_tokens > len(texts)  # real token counts, special tokens included


def test_models_list_names_every_kind(client: openai.OpenAI) -> None:
    cards = {m.id: m for m in client.models.list().data}
    assert {"minilm", "effnet-lite0", "whisper-tiny-en", "llama-cpp", "digits-gated"} <= set(cards)
    digits = cards["digits-gated"].model_dump()
    assert digits["kind"] == "fusion"
    assert digits["classes"] == [str(d) for d in range(10)]
    assert sorted(digits["modalities"]) == ["audio", "image"]
    assert client.models.retrieve("minilm").id == "minilm"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_chat_about_an_image(client: openai.OpenAI) -> None:
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste((220, 20, 20), (24, 24, 72, 72))
    completion = client.chat.completions.create(
        model="llama-cpp",
        max_tokens=12,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": png_data_uri(image)}},
                ],
            }
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.model == "llama-cpp"
    reply = completion.choices[0].message.content
    assert reply and reply.strip()
    assert completion.choices[0].finish_reason == "stop"
    extras = (completion.model_extra or {})["omnifuse"]
    assert extras["question"] == "What is in this image?"
    assert extras["context"].startswith("Image: ")  # EfficientNet labels were perceived
    assert "labels: " in extras["context"]
    assert extras["answer"]


def test_chat_streams_server_sent_events(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="llama-cpp",
        max_tokens=12,
        stream=True,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What colour is the sky on a clear day?"},
        ],
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(pieces).strip()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


def test_transcription_of_real_speech(client: openai.OpenAI, serve_data: ServeData) -> None:
    row = next(r for r in serve_data.speech_rows() if r["text"] == "ten of clubs")
    with (serve_data.speech / str(row["audio"])).open("rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-tiny-en", file=fh)
    words = result.text.lower().replace(".", "").split()
    assert words[-2:] == ["of", "clubs"] and words[0] in ("ten", "10")
    with (serve_data.speech / str(row["audio"])).open("rb") as fh:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json"
        )
    assert verbose.text == result.text
    assert 0.5 < verbose.duration < 3.0  # the clip lasts about 1.1 s
    with (serve_data.speech / str(row["audio"])).open("rb") as fh:
        text = client.audio.transcriptions.create(
            model="whisper-tiny-en", file=fh, response_format="text"
        )
    assert str(text).strip() == result.text


def test_the_next_chat_is_answered_after_a_client_leaves_mid_stream(
    client: openai.OpenAI, server: BackgroundServer
) -> None:
    import httpx

    body = {
        "model": "llama-cpp",
        "max_tokens": 64,
        "stop": [],
        "stream": True,
        "messages": [{"role": "user", "content": "Count from one to fifty in words."}],
    }
    with (
        httpx.Client(base_url=server.url, timeout=60.0) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(response.iter_lines())
        assert first.startswith("data: {")
    completion = client.chat.completions.create(
        model="llama-cpp", max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content is not None
