"""The openai backend against a real llama-cpp-python server on loopback (same GGUF as the
in-process backend), plus a tiny loopback HTTP server for the error statuses."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnifuse.errors import ConfigError, EmptyInputError, InputError
from omnifuse.llm import LLM, ChatMessage, GenerationConfig, create_llm
from omnifuse.llm.openai_compat import LLMServerError, OpenAICompatLLM, api_base

GREEDY = GenerationConfig(max_tokens=16)
SAME_AS_IN_PROCESS = {"repeat_penalty": 1.0}
"""llama-cpp-python's server penalises repeats (1.1) unless told otherwise; in-process does not.
Sent through ``extra``, which also shows server-specific fields reaching the request body."""
PROMPTS = ("The Eiffel Tower is in the city of", "The capital of Italy is")


@pytest.fixture(scope="module")
def remote(llama_server: str) -> Iterator[OpenAICompatLLM]:
    llm = create_llm("openai", base_url=llama_server)
    assert isinstance(llm, OpenAICompatLLM)
    yield llm
    llm.close()


def test_model_defaults_to_the_served_one(remote: OpenAICompatLLM, gguf_path: Path) -> None:
    assert remote.list_models() == [str(gguf_path)]
    assert remote.model == str(gguf_path)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_completion_matches_in_process(remote: LLM, gemma: LLM, prompt: str) -> None:
    served = remote.generate(prompt, GenerationConfig(16, extra=SAME_AS_IN_PROCESS))
    assert served == gemma.generate(prompt, GREEDY)
    assert len(served.split()) >= 5


def test_stream_pieces_join_to_generate(remote: LLM) -> None:
    pieces = list(remote.stream(PROMPTS[1], GREEDY))
    assert len(pieces) > 3
    assert "".join(pieces) == remote.generate(PROMPTS[1], GREEDY)


def test_stop_string_matches_in_process(remote: LLM, gemma: LLM) -> None:
    config = GenerationConfig(16, stop=("France",))
    served = remote.generate(PROMPTS[0], config)
    assert served.startswith(" Paris") and "France" not in served
    assert served == gemma.generate(PROMPTS[0], config)


def test_chat_answers(remote: LLM) -> None:
    question = [ChatMessage("user", "What is the capital of France?")]
    config = GenerationConfig(max_tokens=24, stop=("USER:",))
    answer = remote.chat(question, config)
    assert "Paris" in answer and "USER" not in answer
    assert "".join(remote.chat_stream(question, config)) == answer


def test_abandoned_stream_leaves_the_client_usable(remote: LLM) -> None:
    pieces = remote.stream(PROMPTS[1], GenerationConfig(max_tokens=64))
    assert next(pieces) and next(pieces)
    pieces.close()  # type: ignore[attr-defined]
    assert remote.generate(PROMPTS[1], GREEDY).startswith(" the capital")


def test_server_refusal_keeps_its_message(remote: LLM) -> None:
    with pytest.raises(InputError, match=r"rejected the request \(400\).*maximum context length"):
        remote.generate("word " * 3000, GREEDY)
    with pytest.raises(EmptyInputError):
        remote.generate("")


def test_unknown_route_and_unreachable_server(llama_server: str) -> None:
    wrong = create_llm("openai", base_url=llama_server.replace("/v1", "/v2"), model="m")
    with pytest.raises(ConfigError, match=r"no such model or route \(404\)"):
        wrong.generate("Hello")
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMServerError, match="unreachable"):
        create_llm("openai", base_url=closed, model="m", max_retries=0).generate("Hello")
    with pytest.raises(LLMServerError, match="unreachable"):
        create_llm("openai", base_url=closed, max_retries=0)  # listing models


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_base_normalisation() -> None:
    assert api_base("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert api_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert api_base("https://host/api/v1/") == "https://host/api/v1"
    with pytest.raises(ConfigError, match="http"):
        api_base("127.0.0.1:8080")


class FixedReply(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status and JSON body set on the server."""

    def do_POST(self) -> None:
        status, body = self.server.reply  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def fixed_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), FixedReply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "error", "pattern"),
    [
        (401, ConfigError, r"refused the API key \(401\): bad key"),
        (422, InputError, r"rejected the request \(422\): bad key"),
        (503, LLMServerError, r"failed \(503\): bad key"),
    ],
)
def test_error_statuses_become_typed_errors(
    fixed_server: http.server.HTTPServer, status: int, error: type[Exception], pattern: str
) -> None:
    fixed_server.reply = (status, {"error": {"message": "bad key"}})  # type: ignore[attr-defined]
    port = fixed_server.server_address[1]
    llm = create_llm("openai", base_url=f"http://127.0.0.1:{port}", model="m", max_retries=0)
    with pytest.raises(error, match=pattern):
        llm.generate("Hello")
    if status == 503:
        assert exc_status(llm) == 503


def exc_status(llm: LLM) -> int | None:
    try:
        llm.chat([ChatMessage("user", "Hello")])
    except LLMServerError as exc:
        return exc.status
    return None
