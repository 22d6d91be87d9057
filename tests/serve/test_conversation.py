"""Conversations through the API with the real components (llama.cpp Gemma, EfficientNet,
faster-whisper): attachments from earlier turns, token usage (plain and streamed), what the
tools said in the ``omnifuse`` extra, and transcription with a language and a prompt."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image
from serve_kit import DIGITS_MODEL, ServeData

from omnifuse.assistant.notes import ToolNote
from omnifuse.serve.generation import tool_use
from omnifuse.serve.runner import BackgroundServer
from omnifuse.serve.schemas import ChatExtras


def png_data_uri(colour: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste(colour, (24, 24, 72, 72))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


RED = png_data_uri((220, 20, 20))
BLUE = png_data_uri((20, 40, 220))


def user(text: str, image: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": image}})
    return {"role": "user", "content": content}


def chat(api: httpx.Client, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body = {"model": "llama-cpp", "max_tokens": 4, "messages": messages, **extra}
    response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_image_from_an_earlier_turn_is_still_perceived(api: httpx.Client) -> None:
    alone = chat(api, [user("What is in this image?", RED)])["omnifuse"]
    assert alone["context"].startswith("Image:")
    conversation = [
        user("What is in this image?", RED),
        {"role": "assistant", "content": "A red square."},
        user("What colour is it?"),
    ]
    later = chat(api, conversation)["omnifuse"]
    assert later["question"] == "What colour is it?"
    assert later["context"] == alone["context"]  # the same image, perceived again

    without = chat(api, [user("What colour is it?")])["omnifuse"]
    assert not (without["context"] or "").startswith("Image:")


def test_the_last_messages_own_image_wins_over_an_earlier_one(api: httpx.Client) -> None:
    blue_alone = chat(api, [user("What is this?", BLUE)])["omnifuse"]["context"]
    red_alone = chat(api, [user("What is this?", RED)])["omnifuse"]["context"]
    conversation = [
        user("What is this?", RED),
        {"role": "assistant", "content": "A red square."},
        user("And this?", BLUE),
    ]
    assert red_alone != blue_alone
    assert chat(api, conversation)["omnifuse"]["context"] == blue_alone


def test_an_image_in_an_assistant_message_is_not_an_attachment(api: httpx.Client) -> None:
    conversation = [
        {"role": "assistant", "content": user("Here is one.", RED)["content"]},
        user("What colour is it?"),
    ]
    extras = chat(api, conversation)["omnifuse"]
    assert not (extras["context"] or "").startswith("Image:")


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Any:
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=180.0
    ) as oai:
        yield oai


def test_replies_carry_token_usage_plain_and_streamed(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Count from one to ten in words."}]
    completion = client.chat.completions.create(
        model="llama-cpp", max_tokens=6, stop=[], messages=messages
    )
    usage = completion.usage
    assert usage is not None
    assert 1 <= usage.completion_tokens <= 6
    assert usage.prompt_tokens > 20  # the system prompt and worked examples are sent too
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    stream = client.chat.completions.create(
        model="llama-cpp",
        max_tokens=6,
        stop=[],
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == usage.model_dump()  # greedy: the same reply
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content

    plain_stream = client.chat.completions.create(
        model="llama-cpp", max_tokens=2, messages=messages, stream=True
    )
    assert all(c.usage is None and c.choices for c in plain_stream)


def test_tool_notes_become_the_api_shape_as_strict_json() -> None:
    note = ToolNote(
        "model:world-vqa",
        "blue",
        confidence=np.float32(0.875),  # type: ignore[arg-type]
        quality="validation accuracy 0.65 on 240 questions",
        seconds=0.01234,
        data={"top": np.array([0.875, 0.125]), "bad": float("nan"), "shape": (2,)},
    )
    shown = tool_use(note)
    assert shown.model_dump() == {
        "name": "model:world-vqa",
        "text": "blue",
        "confidence": 0.875,
        "quality": "validation accuracy 0.65 on 240 questions",
        "seconds": 0.012,
        "data": {"top": [0.875, 0.125], "bad": None, "shape": [2]},
    }
    extras = ChatExtras(tools=[shown]).model_dump(mode="json")
    assert json.loads(json.dumps(extras, allow_nan=False))["tools"][0]["name"] == "model:world-vqa"


def test_chat_extras_list_the_tools_the_assistant_consulted(api: httpx.Client) -> None:
    extras = chat(api, [user("What is in this image?", RED)])["omnifuse"]
    assert isinstance(extras["tools"], list)
    for tool in extras["tools"]:
        assert set(tool) == {"name", "text", "confidence", "quality", "seconds", "data"}
        assert tool["seconds"] >= 0
    assert "image" in [tool["name"] for tool in extras["tools"]]  # seeing the image is a tool


def test_a_served_model_whose_inputs_are_given_is_consulted(api: httpx.Client) -> None:
    wave = (0.2 * np.sin(np.arange(8000) / 3.0)).astype(np.float32)
    buffer = io.BytesIO()
    import soundfile as sf

    sf.write(buffer, wave, 16000, format="WAV")
    audio = {"data": base64.b64encode(buffer.getvalue()).decode("ascii"), "format": "wav"}
    message = user("Which digit is this?", RED)
    message["content"].append({"type": "input_audio", "input_audio": audio})
    tools = chat(api, [message])["omnifuse"]["tools"]
    model = next(tool for tool in tools if tool["name"] == f"model:{DIGITS_MODEL}")
    assert model["text"] and 0 < model["confidence"] <= 1
    assert model["quality"] and model["quality"].startswith(("test", "val"))
    assert len(model["data"]["top"]) == 3
    only_image = chat(api, [user("Which digit is this?", RED)])["omnifuse"]["tools"]
    assert f"model:{DIGITS_MODEL}" not in [tool["name"] for tool in only_image]


CARD_PROMPT = "ten of clubs nine of hearts two of spades queen of diamonds"


def transcribe(
    api: httpx.Client, data: ServeData, model: str = "whisper-1", **form: str
) -> httpx.Response:
    """A transcription of the real recording of "ten of clubs"."""
    row = next(r for r in data.speech_rows() if r["text"] == "ten of clubs")
    audio = (data.speech / str(row["audio"])).read_bytes()
    return api.post(
        "/v1/audio/transcriptions",
        files={"file": ("ten.wav", audio, "audio/wav")},
        data={"model": model, **form},
    )


def test_transcription_follows_the_prompt_in_the_language_asked(
    api: httpx.Client, serve_data: ServeData
) -> None:
    plain = transcribe(api, serve_data, language="en")
    prompted = transcribe(api, serve_data, language="en", prompt=CARD_PROMPT)
    assert plain.status_code == prompted.status_code == 200
    assert plain.json()["text"] == "10 of clubs."  # Whisper's own style: digits
    assert prompted.json()["text"] == "ten of clubs"  # the prompt's: words, lower case


def test_transcription_refuses_what_the_engine_cannot_honour(
    api: httpx.Client, serve_data: ServeData
) -> None:
    french = transcribe(api, serve_data, language="fr")
    assert french.status_code == 400
    assert "language 'fr' is not supported" in french.json()["error"]["message"]
    assert "transcribes en only" in french.json()["error"]["message"]
    refused = transcribe(api, serve_data, model="pocketsphinx", prompt=CARD_PROMPT)
    assert refused.status_code == 400
    assert "cannot be steered by a prompt" in refused.json()["error"]["message"]
    assert transcribe(api, serve_data, model="pocketsphinx", language="EN").status_code == 200
