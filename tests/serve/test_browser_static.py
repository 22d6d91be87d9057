"""The web page's files as the router serves them: types, security headers, nothing outside the
static folder, and no reference to anything off the server (the page must work offline)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from omnifuse.serve.web import STATIC_FILES, router

SCRIPTS = ["common.js", "ask.js", "search.js", "chat.js", "experiments.js", "app.js"]
"""The page's scripts in load order: shared helpers, one per tab, the start."""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with TestClient(web_only_app()) as test_client:
        yield test_client


def test_page_and_assets_are_served_with_their_types(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    style = client.get("/static/style.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert sorted(STATIC_FILES) == sorted([*SCRIPTS, "index.html", "style.css"])


@pytest.mark.parametrize(
    "path",
    [
        "/static/web.py",
        "/static/__init__.py",
        "/static/../web.py",
        "/static/..%2Fweb.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/",
        "/static/APP.JS",
        "/static/app.js%00.html",
    ],
)
def test_nothing_outside_the_static_files_is_served(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "omnifuse" not in response.text and "import" not in response.text


def test_page_references_only_its_own_files(client: Any) -> None:
    html = client.get("/").text
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    scripts = [f"/static/{name}" for name in SCRIPTS]
    assert sorted(references) == sorted([*scripts, "/static/style.css", "data:,"])
    assert references.index("/static/common.js") < min(
        references.index(name) for name in scripts if name != "/static/common.js"
    ), "the shared helpers load before the tabs' scripts"
    assert references[-1] == "/static/app.js", "the start script loads last"
    for name in (*scripts, "/static/style.css"):
        assert client.get(name).status_code == 200
    for name in scripts:
        script = client.get(name).text
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script), name
        assert "import " not in script and "eval(" not in script, name


def test_every_labelled_control_exists(client: Any) -> None:
    """The labels the browser tests (and screen readers) find controls by."""
    html = client.get("/").text
    for control in (
        "image-input",
        "audio-input",
        "question-input",
        "chat-model",
        "fusion-model",
        "max-tokens",
        "api-key",
        "search-text",
        "search-picture",
        "search-k",
        "chat-input",
        "chat-picture",
        "chat-sound",
        "experiment-select",
        "model-select",
    ):
        assert f'<label for="{control}">' in html
        assert f'id="{control}"' in html


def test_the_server_serves_the_page_without_an_api_key() -> None:
    """``create_app`` mounts the page; with API keys set, the page and its files stay open
    (the key is typed into the page), the API does not."""
    from omnifuse.serve import ServeConfig, create_app

    app = create_app(ServeConfig(api_keys=("page-test-key-0123",)))
    with TestClient(app, base_url="http://127.0.0.1") as server:
        assert server.get("/").text == TestClient(web_only_app()).get("/").text
        assert server.get("/static/app.js").status_code == 200
        assert server.get("/v1/models").status_code == 401


def web_only_app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app
