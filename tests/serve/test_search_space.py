"""``/v1/search`` embeds a query only with the model an index records (its ``encoder`` or aligned
``model``, and the ``modality`` of its items): another model's vectors of the same size live in
another space, and are refused with a 400 that names both, never searched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from omnifuse.serve import ServeConfig, create_app

SENTENCES = ["a red circle on a white background", "the cat sleeps on the warm windowsill"]
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def minilm_vectors() -> np.ndarray:
    from omnifuse.encoders import create

    vectors = create("minilm").encode(SENTENCES).pooled.float().numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def make_index(tmp_path_factory: pytest.TempPathFactory, minilm_vectors: np.ndarray) -> Any:
    """A FAISS index of the sentences' MiniLM vectors recording ``attributes``."""
    from omnifuse.index import create_index

    def build(attributes: dict[str, str]) -> Path:
        folder = tmp_path_factory.mktemp("space") / "index"
        index = create_index("faiss-flat", folder, dim=384, metric="ip", attributes=attributes)
        index.add(["s0", "s1"], minilm_vectors, [{"source": s} for s in SENTENCES])
        index.close()
        return folder

    return build


@pytest.fixture()
def search(make_index: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``search(body)`` against a server whose index records the attributes the test is
    parametrized with."""
    config = ServeConfig(index_dir=make_index(request.param))
    with TestClient(create_app(config), base_url=LOCAL) as client:
        yield lambda body: client.post("/v1/search", json=body)


def refusal(response: Any, code: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


@pytest.mark.parametrize("search", [{"encoder": "minilm", "modality": "text"}], indirect=True)
def test_the_recorded_encoder_answers(search: Any) -> None:
    for body in ({"query": "a sleeping cat"}, {"query": "a sleeping cat", "model": "minilm"}):
        response = search(body | {"k": 1})
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "minilm" and response.json()["data"][0]["id"] == "s1"


@pytest.mark.parametrize("search", [{"encoder": "e5-small", "modality": "text"}], indirect=True)
def test_another_encoder_of_the_same_size_is_refused(search: Any) -> None:
    named = refusal(search({"query": "cat", "model": "minilm"}), "index_model_mismatch")
    assert "'minilm' cannot query this index" in named and "'e5-small'" in named
    auto = refusal(search({"query": "cat"}), "unsupported_modality")
    assert "no loaded model embeds text" in auto and "encoder 'e5-small'" in auto


@pytest.mark.parametrize(
    "search", [{"model": "/nowhere/world-aligned", "modality": "image"}], indirect=True
)
def test_an_encoder_is_refused_by_an_index_of_an_aligned_model(search: Any) -> None:
    message = refusal(search({"query": "cat", "model": "minilm"}), "index_model_mismatch")
    assert "aligned model /nowhere/world-aligned" in message
    assert "aligned model 'world-aligned', image items" in message


@pytest.mark.parametrize("search", [{"modality": "image"}], indirect=True)
def test_a_model_that_does_not_embed_the_items_modality_is_refused(search: Any) -> None:
    message = refusal(search({"query": "cat", "model": "minilm"}), "index_model_mismatch")
    assert "does not embed image" in message


@pytest.mark.parametrize("search", [{}], indirect=True)
def test_an_index_that_records_nothing_is_checked_by_size_alone(search: Any) -> None:
    assert search({"query": "a red circle", "k": 1}).json()["data"][0]["id"] == "s0"
    image = {"query": {"image": "data:image/png;base64,iVBORw0KGgo="}, "model": "effnet-lite0"}
    assert "384-d" in refusal(search(image), "dimension_mismatch")
