"""A corpus of malformed and hostile requests: each is answered with a 4xx in the one JSON error
shape, with a message naming what was wrong, and the server keeps serving afterwards."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from serve_kit import DIGITS_MODEL, LIMITS, ServeData


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(width: int = 32, height: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG announcing ``width``×``height`` whose pixel data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def media_input(model: str, kind: str, **source: str) -> dict[str, Any]:
    """An embeddings request of one ``kind`` part, read from ``source``: its ``data`` (base64
    or a data URI), a ``path`` under the allowed root or a ``url``."""
    return {"model": model, "input": [{"type": kind, **source}]}


def image_input(**source: str) -> dict[str, Any]:
    return media_input("effnet-lite0", "image", **source)


def audio_input(**source: str) -> dict[str, Any]:
    return media_input("whisper-tiny-en", "audio", **source)


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "llama-cpp", "messages": [{"role": "user", "content": content}], **extra}


def image_chat(url: str) -> dict[str, Any]:
    return chat(
        [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    )


@dataclass
class Bad:
    """One malformed request and the status it must get."""

    name: str
    status: int
    path: str = "/v1/embeddings"
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    method: str = "POST"
    message: str = ""

    def send(self, api: httpx.Client) -> httpx.Response:
        return api.request(
            self.method,
            self.path,
            json=self.json,
            content=self.content,
            headers=self.headers,
            files=self.files,
            data=self.data,
        )


def transcription(name: str, status: int, audio: bytes | None, **form: str) -> Bad:
    """A transcription upload of ``audio`` as ``a.wav`` (no file when ``None``) with ``form``."""
    files = None if audio is None else {"file": ("a.wav", audio, "audio/wav")}
    return Bad(name, status, path="/v1/audio/transcriptions", files=files, data=form)


SILENT_WAV = wav(np.zeros(1600, np.int16), 16000)
NAN_WAV = wav(np.full(16000, np.nan, dtype=np.float32), 16000, "FLOAT")
LONG_WAV = wav(np.zeros(int(LIMITS.max_audio_seconds + 1) * 8000, dtype=np.int16), 8000)
TRUNCATED_PNG = png(64, 64)[:60]

IMAGE_SOURCES: list[tuple[str, int, dict[str, str], str]] = [
    ("path traversal", 403, {"path": "../../../../etc/passwd"}, "outside the allowed root"),
    ("absolute path outside the root", 403, {"path": "/etc/hostname"}, ""),
    ("file URL outside the root", 403, {"url": "file:///etc/passwd"}, ""),
    ("missing file under the root", 400, {"path": "no-such.png"}, "no such file"),
    ("folder instead of a file", 400, {"path": "digits"}, ""),
    ("disallowed URL", 403, {"url": "http://example.com/cat.png"}, "not allowed"),
    ("unsupported URL scheme", 400, {"url": "ftp://example.com/cat.png"}, ""),
    ("two sources in one part", 422, {"data": "x", "path": "y"}, ""),
]
"""Where an image part may point, and how each refusal is answered: (name, status, the part's
source, words the message must hold)."""

CORPUS: list[Bad] = [
    Bad("truncated PNG", 400, json=image_input(data="data:image/png;base64," + b64(TRUNCATED_PNG))),
    Bad(
        "text as image",
        415,
        json=image_input(data=b64(b"hello, I am not a picture at all\n" * 4)),
        message="image",
    ),
    Bad(
        "huge dimensions header",
        413,
        json=image_input(data=b64(png_header_only(100_000, 100_000))),
        message="pixels",
    ),
    Bad("zero-size image header", 400, json=image_input(data=b64(png_header_only(0, 0)))),
    Bad(
        "bad base64",
        422,
        json=image_input(data="data:image/png;base64,@@@not*base64@@@"),
        message="base64",
    ),
    Bad("bad data URI", 422, json=image_input(data="data:image/png;base64"), message="data URI"),
    Bad("empty base64 image", 400, json=image_input(data=""), message="empty"),
    Bad("empty text", 400, json={"model": "minilm", "input": ""}, message="no text"),
    Bad("whitespace text", 400, json={"model": "minilm", "input": ["   \n\t "]}),
    Bad("empty input list", 400, json={"model": "minilm", "input": []}),
    Bad("input of wrong type", 422, json={"model": "minilm", "input": 123}, message="input"),
    Bad("token ids instead of text", 422, json={"model": "minilm", "input": [[1, 2, 3]]}),
    Bad("missing input", 422, json={"model": "minilm"}, message="input"),
    Bad(
        "image to a text model",
        400,
        json=media_input("minilm", "image", data=b64(png())),
        message="minilm",
    ),
    Bad("unknown embedding model", 404, json={"model": "text-embedding-3-large", "input": "x"}),
    Bad("model name with a path", 422, json={"model": "../../etc", "input": "x"}),
    Bad("wrong dimensions", 400, json={"model": "minilm", "input": "x", "dimensions": 12}),
    Bad("too many inputs", 413, json={"model": "minilm", "input": ["x"] * (LIMITS.max_items + 1)}),
    Bad(
        "not JSON", 400, content=b"{this is not json", headers={"content-type": "application/json"}
    ),
    Bad(
        "invalid UTF-8 body",
        400,
        content=b'{"input": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    ),
    Bad(
        "deeply nested JSON",
        400,
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"content-type": "application/json"},
    ),
    Bad("JSON but a list", 422, json=["minilm", "x"]),
    Bad("empty body", 422, content=b"", headers={"content-type": "application/json"}),
    Bad(
        "oversized body",
        413,
        content=b'{"input": "' + b"a" * LIMITS.max_body_bytes + b'"}',
        headers={"content-type": "application/json"},
    ),
    *(
        Bad(name, status, json=image_input(**source), message=message)
        for name, status, source, message in IMAGE_SOURCES
    ),
    Bad("NaN audio samples", 422, json=audio_input(data=b64(NAN_WAV)), message="NaN"),
    Bad("audio over the duration limit", 413, json=audio_input(data=b64(LONG_WAV))),
    Bad("PNG as audio", 415, json=audio_input(data=b64(png()))),
    Bad(
        "NaN temperature",
        422,
        path="/v1/chat/completions",
        content=b'{"model": "llama-cpp", "temperature": NaN, '
        b'"messages": [{"role": "user", "content": "hi"}]}',
        headers={"content-type": "application/json"},
    ),
    Bad(
        "huge max_tokens",
        422,
        path="/v1/chat/completions",
        json=chat("hi", max_tokens=10**9),
        message="max_tokens",
    ),
    Bad(
        "messages of wrong type",
        422,
        path="/v1/chat/completions",
        json={"model": "llama-cpp", "messages": "hi"},
    ),
    Bad(
        "no messages", 422, path="/v1/chat/completions", json={"model": "llama-cpp", "messages": []}
    ),
    Bad(
        "unknown content part",
        422,
        path="/v1/chat/completions",
        json=chat([{"type": "file", "file": {}}]),
    ),
    Bad(
        "last message not from the user",
        400,
        path="/v1/chat/completions",
        json={"model": "llama-cpp", "messages": [{"role": "assistant", "content": "hi"}]},
    ),
    Bad(
        "unknown chat model",
        404,
        path="/v1/chat/completions",
        json=chat("hi") | {"model": "gpt-4o"},
    ),
    Bad("several completions", 422, path="/v1/chat/completions", json=chat("hi", n=3)),
    Bad(
        "corrupt chat image",
        400,
        path="/v1/chat/completions",
        json=image_chat("data:image/png;base64," + b64(TRUNCATED_PNG)),
    ),
    Bad(
        "chat image URL not allowed",
        403,
        path="/v1/chat/completions",
        json=image_chat("https://example.com/a.png"),
    ),
    Bad(
        "chat image path traversal",
        403,
        path="/v1/chat/completions",
        json=image_chat("../../etc/passwd"),
    ),
    Bad(
        "bad chat audio",
        422,
        path="/v1/chat/completions",
        json=chat([{"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}]),
    ),
    transcription("no file in transcription", 422, None, model="whisper-1"),
    transcription("garbage audio file", 415, b"\x00\x01garbage" * 100, model="whisper-1"),
    transcription("empty audio file", 400, b"", model="whisper-1"),
    transcription("unknown transcription model", 404, SILENT_WAV, model="nope"),
    transcription("bad response format", 422, SILENT_WAV, model="whisper-1", response_format="xml"),
    Bad(
        "unknown fusion model",
        404,
        path="/v1/predict",
        json={"model": "nope", "inputs": {"image": "x"}},
    ),
    Bad(
        "predict inputs of wrong type",
        422,
        path="/v1/predict",
        json={"model": DIGITS_MODEL, "inputs": "three"},
    ),
    Bad(
        "predict top_k out of range",
        422,
        path="/v1/predict",
        json={"model": DIGITS_MODEL, "inputs": {"image": "x"}, "top_k": 0},
    ),
    Bad("search k of wrong type", 422, path="/v1/search", json={"query": "cat", "k": "ten"}),
    Bad(
        "search query with two modalities",
        422,
        path="/v1/search",
        json={"query": {"text": "cat", "image": "x"}},
    ),
    Bad(
        "search filter on a bad field",
        422,
        path="/v1/search",
        json={"query": "cat", "filter": {"bad field!": 1}},
    ),
    Bad("unknown endpoint", 404, path="/v1/nothing-here", json={}),
    Bad("wrong method", 405, path="/v1/embeddings", method="GET"),
]


@pytest.mark.parametrize("bad", CORPUS, ids=[b.name for b in CORPUS])
def test_malformed_request_is_a_json_4xx(api: httpx.Client, bad: Bad) -> None:
    assert_refused(bad, bad.send(api))


def assert_refused(bad: Bad, response: httpx.Response) -> None:
    """``response`` has ``bad``'s status and the JSON error shape, its message naming what was
    wrong."""
    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert bad.message.lower() in error["message"].lower()


def test_the_server_keeps_serving_after_the_corpus(api: httpx.Client) -> None:
    for bad in CORPUS:
        bad.send(api)
    assert api.get("/healthz").json()["status"] == "ok"
    ok = api.post("/v1/embeddings", json={"model": "minilm", "input": "still here"})
    assert ok.status_code == 200
    assert len(ok.json()["data"][0]["embedding"]) == 384


def test_chunked_body_over_the_limit_is_cut_off(api: httpx.Client) -> None:
    def body() -> Any:
        yield b'{"model": "minilm", "input": "'
        for _ in range(LIMITS.max_body_bytes // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = api.post(
        "/v1/embeddings", content=body(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "over the limit" in response.json()["error"]["message"]


def test_media_from_the_allowed_root_and_allow_listed_host(
    api: httpx.Client, serve_data: ServeData, file_host: Any
) -> None:
    row = serve_data.digit_rows()[0]
    by_path = api.post(
        "/v1/embeddings",
        json=image_input(path=f"digits/{row['image']}"),
    )
    by_url = api.post(
        "/v1/embeddings",
        json=image_input(url=file_host.url("/digit.png")),
    )
    by_data = api.post(
        "/v1/embeddings",
        json=image_input(data=b64((serve_data.digits / row["image"]).read_bytes())),
    )
    vectors = [np.array(r.json()["data"][0]["embedding"]) for r in (by_path, by_url, by_data)]
    assert vectors[0].shape == (1280,)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/moved.png", 400, "HTTP 302"),
        ("/missing.png", 400, "HTTP 404"),
        ("/huge.bin", 413, "over the limit"),
    ],
)
def test_remote_fetches_are_bounded(
    api: httpx.Client, file_host: Any, path: str, status: int, message: str
) -> None:
    response = api.post(
        "/v1/embeddings",
        json=image_input(url=file_host.url(path)),
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_a_symlink_out_of_the_root_is_refused(api: httpx.Client, serve_data: ServeData) -> None:
    link = serve_data.root / "escape.png"
    if not link.exists():
        link.symlink_to("/etc/hostname")
    response = api.post(
        "/v1/embeddings",
        json=image_input(path="escape.png"),
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "path_not_allowed"
