"""Schemathesis against the server's own OpenAPI description: over a thousand generated requests
(valid and invalid) across every operation, and not one 5xx.

The app is the real one (``create_app``) with a fusion model, a caption index, the default chat
model and speech recogniser, called in process through ASGI. Half of the valid requests name
one of the server's models of the right kind (so they reach the encoders, the fusion model, the
index and the LLM rather than stopping at 404); invalid ones are left as generated. Every
failure is listed with a curl command that reproduces it. Every response must also match its
declared schema, errors included (the API description declares them). ``OMNIFUSE_FUZZ_SEED``
picks another sequence of requests.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tabs_kit import experiments_folder
from web_fixtures import (
    FUSION_MODEL,
    web_app,
    web_assets,
)

from omnifuse.serve import ServeConfig, ServeLimits

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.slow

MIN_REQUESTS = 1000
EXAMPLES: dict[str, int] = {
    "POST /v1/embeddings": 140,
    "POST /v1/predict": 120,
    "POST /v1/search": 120,
    "POST /v1/chat/completions": 70,
    "POST /v1/audio/transcriptions": 60,
    "POST /v1/consistency": 60,
    "POST /v1/images/generations": 40,
    "POST /v1/audio/speech": 40,
    "GET /v1/items/image": 60,
    "GET /v1/experiments": 10,
    "GET /v1/experiments/{experiment_id}": 60,
    "GET /v1/experiments/{experiment_id}/plots/{name}": 60,
    "GET /v1/models/{model_id}": 140,
    "GET /v1/models": 10,
    "GET /healthz": 10,
    "GET /metrics": 10,
}
"""Examples per operation and generation mode (positive and negative data each)."""
MODEL_KINDS = ("embedding", "fusion", "chat", "transcription")
KINDS: dict[str, tuple[str, ...]] = {
    "POST /v1/embeddings": ("embedding",),
    "POST /v1/predict": ("fusion",),
    "POST /v1/search": ("embedding",),
    "POST /v1/chat/completions": ("chat",),
    "POST /v1/audio/transcriptions": ("transcription",),
    "POST /v1/consistency": ("embedding",),
    "POST /v1/images/generations": (),
    "POST /v1/audio/speech": (),
    "GET /v1/items/image": (),
    "GET /v1/experiments": (),
    "GET /v1/experiments/{experiment_id}": ("experiment",),
    "GET /v1/experiments/{experiment_id}/plots/{name}": ("experiment",),
    "GET /v1/models/{model_id}": MODEL_KINDS,
    "GET /v1/models": (),
    "GET /healthz": (),
    "GET /metrics": (),
}
"""The kinds of model (``GET /v1/models``) each operation's valid requests name; an
``experiment`` is one of ``GET /v1/experiments``."""
ANSWERED = {
    "GET /healthz",
    "GET /metrics",
    "GET /v1/models",
    "GET /v1/models/{model_id}",
    "GET /v1/experiments",
    "POST /v1/embeddings",
    "POST /v1/search",
    "POST /v1/chat/completions",
}
"""Operations whose generated valid requests must sometimes succeed, not only be refused."""
CHAT_TOKENS = 8
"""Chat requests that name a model ask for at most this many tokens: the LLM runs, briefly."""
SEED = int(os.environ.get("OMNIFUSE_FUZZ_SEED", "20261122"))
BODY_PREVIEW = 300
ASGI_HOST = "testserver"
"""The Host of schemathesis's in-process requests, allowed like a deployment's own name."""


@dataclass
class Finding:
    operation: str
    mode: str
    status: int | None
    detail: str
    curl: str

    def __str__(self) -> str:
        status = "exception" if self.status is None else str(self.status)
        return f"{self.operation} [{self.mode}] → {status}: {self.detail}\n    {self.curl}"


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: list[Finding] = field(default_factory=list)
    nonconforming: list[Finding] = field(default_factory=list)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    assets = web_assets(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("fuzz"))
    config = ServeConfig(
        models_dir=assets.models,
        index_dir=assets.index,
        allowed_root=assets.world,
        experiments_dir=experiments_folder(tmp_path_factory.getbasetemp()),
        allowed_hosts=(ASGI_HOST,),
        limits=ServeLimits(max_tokens=CHAT_TOKENS, max_items=16, max_k=50, request_timeout_s=60.0),
    )
    return web_app(config)


def curl_of(case: Any) -> str:
    try:
        return str(case.as_curl_command())
    except Exception as err:  # the reproducer itself could not be rendered
        return f"(no curl command: {err})"


def exercise(case: Any, mode: str, tally: Tally, checks: dict[str, Callable[..., Any]]) -> None:
    """Send one generated request; record 5xx (or a crash) and responses off their schema."""
    label = case.operation.label
    tally.requests[label] += 1
    try:
        response = case.call()
    except Exception as err:
        tally.server_errors.append(
            Finding(label, mode, None, f"{type(err).__name__}: {err}", curl_of(case))
        )
        return
    tally.statuses[label, response.status_code] += 1
    if response.status_code >= 500:
        detail = response.text[:BODY_PREVIEW]
        tally.server_errors.append(
            Finding(label, mode, response.status_code, detail, curl_of(case))
        )
        return
    try:
        case.validate_response(response, checks=[checks["server"], checks["schema"]])
    except Exception as err:
        tally.nonconforming.append(
            Finding(label, mode, response.status_code, str(err)[:BODY_PREVIEW], curl_of(case))
        )


def with_model(case: Any, name: str | None) -> Any:
    """``case`` naming model ``name``: every operation of this API with a path parameter or a
    body names a model there (chat requests also keep to a few tokens). ``None`` leaves the
    case as generated."""
    if name is None:
        return case
    parameters = case.path_parameters or {}
    if "model_id" in parameters or "experiment_id" in parameters:
        case.path_parameters["model_id" if "model_id" in parameters else "experiment_id"] = name
    elif isinstance(case.body, dict):
        case.body["model"] = name
        if "messages" in case.body:
            as_short_user_turn(case.body)
    return case


def as_short_user_turn(body: dict[str, Any]) -> None:
    """A chat body that ends with a user turn and asks for a few tokens, so the LLM runs."""
    body.pop("max_completion_tokens", None)
    body["max_tokens"] = min(body.get("max_tokens") or CHAT_TOKENS, CHAT_TOKENS)
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        messages[-1]["role"] = "user"


def cases(operation: Any, mode: Any, models: list[str]) -> Any:
    """Generated requests; valid ones name one of the server's models half of the time, so
    they reach the encoders, the fusion model, the index and the LLM, not only the 404 path."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    strategy = operation.as_strategy(generation_mode=mode)
    if mode != GenerationMode.POSITIVE or not models:
        return strategy
    name = st.one_of(st.none(), st.sampled_from(models))
    return st.tuples(strategy, name).map(lambda pair: with_model(*pair))


def fuzz_operation(
    operation: Any, mode: Any, examples: int, models: list[str], tally: Tally
) -> None:
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    checks = {"server": not_a_server_error, "schema": response_schema_conformance}

    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(operation, mode, models))
    def run(case: Any) -> None:
        exercise(case, mode.value, tally, checks)

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()  # Unsatisfiable: no invalid request exists for an operation without inputs


def test_no_server_error_over_a_thousand_generated_requests(app: Any) -> None:
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert labels == sorted(EXAMPLES), f"operations changed: {labels}"

    listing = schema["/v1/models"]["GET"].Case().call().json()["data"]
    by_kind = {kind: sorted(c["id"] for c in listing if c["kind"] == kind) for kind in MODEL_KINDS}
    shown = schema["/v1/experiments"]["GET"].Case().call().json()["data"]
    by_kind["experiment"] = sorted(e["id"] for e in shown)
    assert len(by_kind["experiment"]) == 2
    assert by_kind["fusion"] == [FUSION_MODEL] and by_kind["chat"] == ["llama-cpp"]

    tally = Tally()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            models = sorted({m for kind in KINDS[operation.label] for m in by_kind[kind]})
            fuzz_operation(operation, mode, EXAMPLES[operation.label], models, tally)

    total = sum(tally.requests.values())
    summary = f"{total} requests; by operation and status: {dict(sorted(tally.statuses.items()))}"
    print(summary)
    assert total >= MIN_REQUESTS, summary
    assert not tally.server_errors, "server errors:\n" + "\n".join(map(str, tally.server_errors))
    assert not tally.nonconforming, "responses off schema:\n" + "\n".join(
        map(str, tally.nonconforming)
    )
    assert all(status < 500 for _, status in tally.statuses)
    answered = {label for label, status in tally.statuses if 200 <= status < 300}
    assert answered >= ANSWERED, f"no successful request to {ANSWERED - answered}"


def test_web_page_routes_stay_out_of_the_api_description(app: Any) -> None:
    paths = app.openapi()["paths"]
    assert "/" not in paths and "/static/{name}" not in paths
    assert "/v1/chat/completions" in paths


FOREIGN_HOST = "evil.example"
FOREIGN_EXAMPLES = 5
"""Generated requests per operation and mode sent with ``Host: evil.example``."""


def test_a_foreign_host_is_refused_on_every_operation(app: Any) -> None:
    """DNS rebinding: generated requests to every operation, valid and invalid, that name
    another host are each refused (400, ``host_not_allowed``) before any route runs."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    answers: Counter[tuple[str, int, str]] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(SEED)
            @settings(
                max_examples=FOREIGN_EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(headers={"Host": FOREIGN_HOST})
                try:
                    code = str(response.json()["error"]["code"])
                except (ValueError, KeyError, TypeError):
                    code = f"not the JSON error shape: {response.text[:BODY_PREVIEW]}"
                answers[case.operation.label, response.status_code, code] += 1

            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                run()

    assert {label for label, _, _ in answers} == {op.label for op in operations}
    assert {(status, code) for _, status, code in answers} == {(400, "host_not_allowed")}, answers
