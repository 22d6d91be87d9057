"""``POST /v1/audio/speech``, the voice of the page's Chat tab, against the real app: espeak-ng's
WAV, which the server's own recogniser transcribes back; the speed changes the duration; bad
models, voices, lengths and formats refused with typed 4xx; text that cannot be an argument of
the engine (NUL, control characters) spoken as spaces."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tabs_kit import client_for, error_of

from omnifuse.serve import ServeConfig

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speaker() -> Iterator[TestClient]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with client_for(ServeConfig()) as client:
        yield client


def test_speech_is_a_wav_the_recogniser_understands(speaker: TestClient) -> None:
    import soundfile as sf

    text = "The red circle is above the blue square."
    response = speaker.post("/v1/audio/speech", json={"input": text, "voice": "alloy"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    wave, rate = sf.read(io.BytesIO(response.content))
    assert rate == 16000 and wave.ndim == 1 and len(wave) > rate  # over a second of speech
    assert np.abs(wave).max() > 0.05
    heard = speaker.post(
        "/v1/audio/transcriptions",
        files={"file": ("reply.wav", response.content, "audio/wav")},
        data={"model": "whisper-1"},
    )
    assert heard.status_code == 200, heard.text
    words = set(heard.json()["text"].lower().replace(".", "").split())
    assert {"red", "circle", "blue", "square"} <= words, words


def test_speech_speed_changes_the_duration(speaker: TestClient) -> None:
    import soundfile as sf

    def seconds(speed: float) -> float:
        body = {"input": "one two three four five six", "speed": speed}
        wave, rate = sf.read(io.BytesIO(speaker.post("/v1/audio/speech", json=body).content))
        return len(wave) / rate

    assert seconds(2.0) < seconds(1.0) < seconds(0.5)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": "hi", "model": "gpt-4o-mini-tts"}, 404, "model_not_found"),
        ({"input": "hi", "voice": "darth"}, 400, "unsupported_voice"),
        ({"input": ""}, 422, "validation_error"),
        ({"input": " \n "}, 400, None),
        ({"input": "x" * 4097}, 422, "validation_error"),
        ({"input": "hi", "response_format": "mp3"}, 422, "validation_error"),
        ({"input": "hi", "speed": 10}, 422, "validation_error"),
    ],
)
def test_bad_speech_requests_are_refused(
    speaker: TestClient, body: dict[str, Any], status: int, code: str | None
) -> None:
    error = error_of(speaker.post("/v1/audio/speech", json=body), status)
    assert code is None or error["code"] == code


def test_control_characters_are_spoken_as_spaces(speaker: TestClient) -> None:
    """The engine takes the text as an argument, where NUL cannot go: it is spoken as a space."""

    def speak(body: bytes) -> Any:
        headers = {"content-type": "application/json"}
        return speaker.post("/v1/audio/speech", content=body, headers=headers)

    response = speak(b'{"input": "one\\u0000two\\u0007three\\u001b[31m four"}')
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"RIFF")
    error_of(speak(b'{"input": "one\\ud800two"}'), 422)  # a lone surrogate is not text
