"""A server with an aligned model: embeddings of every modality in one space (equal to
``AlignedModel.embed``), and cross-modal search (text → images, image → images) over an index of
aligned image vectors."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from omnifuse.serve import ServeConfig
from omnifuse.serve.runner import BackgroundServer

pytestmark = pytest.mark.slow
WORLD_SIZE = 24


@pytest.fixture(scope="module")
def aligned_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny world, captions ↔ images aligned on it, and an index of its aligned images."""
    from omnifuse.align import AlignConfig, load_aligned, train_alignment
    from omnifuse.data.builders import build
    from omnifuse.index import create_index

    os.environ.setdefault("OMNIFUSE_PROGRESS", "0")
    root = tmp_path_factory.mktemp("aligned")
    world = root / "world"
    build("world", world, seed=0, size=WORLD_SIZE, video_clips=0, image_size=48)
    config = AlignConfig.from_dict(
        {
            "data": {"manifest": str(world / "scenes.jsonl"), "group_by": "caption"},
            "encoders": {
                "caption": "minilm",
                "image": {"name": "cnn-image", "image_size": 32, "channels": [16]},
            },
            "cache": {"dir": str(root / "cache")},
            "pairs": [["caption", "image"]],
            "head": {"dim": 32, "kind": "mlp", "hidden": 64, "dropout": 0.0},
            "train": {"epochs": 25, "batch_size": 16, "lr": 0.003, "patience": 25},
        }
    )
    model_dir = train_alignment(config, root / "scenes-aligned").folder
    model = load_aligned(model_dir)
    rows = [json.loads(line) for line in (world / "scenes.jsonl").read_text().splitlines()]
    images = [str(world / r["image"]) for r in rows]
    recorded = {"model": str(model_dir.resolve()), "modality": "image"}  # as `index build` does
    index = create_index("faiss-flat", root / "index", dim=model.dim, attributes=recorded)
    index.add(
        [r["id"] for r in rows],
        model.embed("image", images),
        [{"modality": "image", "source": r["image"], "caption": r["caption"]} for r in rows],
    )
    index.close()
    return {"root": root, "world": world, "model_dir": model_dir, "model": model, "rows": rows}


@pytest.fixture(scope="module")
def aligned_api(aligned_world: dict[str, Any]) -> Iterator[httpx.Client]:
    config = ServeConfig(
        port=0,
        align_dir=aligned_world["model_dir"],
        index_dir=aligned_world["root"] / "index",
        allowed_root=aligned_world["world"],
    )
    with (
        BackgroundServer(config) as running,
        httpx.Client(base_url=running.url, timeout=120.0) as client,
    ):
        yield client


def test_embeddings_of_both_modalities_equal_the_aligned_model(
    aligned_api: httpx.Client, aligned_world: dict[str, Any]
) -> None:
    model = aligned_world["model"]
    name = Path(aligned_world["model_dir"]).name
    assert (model.modality_of("caption"), model.modality_of("image")) == ("text", "image")
    row = aligned_world["rows"][0]
    image = aligned_world["world"] / row["image"]
    body = {
        "model": name,
        "input": [
            {"type": "text", "text": row["caption"]},
            {"type": "image", "data": base64.b64encode(image.read_bytes()).decode()},
        ],
    }
    response = aligned_api.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    got = np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
    expected = np.concatenate(
        [model.embed("text", [row["caption"]]), model.embed("image", [str(image)])]
    )
    assert got.shape == (2, model.dim)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    auto = aligned_api.post("/v1/embeddings", json={"input": row["caption"]})
    assert auto.json()["model"] == name  # "auto" prefers the aligned model


def test_text_and_image_queries_search_the_image_index(
    aligned_api: httpx.Client, aligned_world: dict[str, Any]
) -> None:
    model = aligned_world["model"]
    rows = aligned_world["rows"]
    caption = rows[3]["caption"]
    response = aligned_api.post("/v1/search", json={"query": caption, "k": 5})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model"] == Path(aligned_world["model_dir"]).name
    images = np.stack(
        [model.embed("image", [str(aligned_world["world"] / r["image"])])[0] for r in rows]
    )
    scores = images @ model.embed("text", [caption])[0]
    expected = [rows[i]["id"] for i in np.argsort(-scores)[:5]]
    assert [hit["id"] for hit in result["data"]] == expected
    by_image = aligned_api.post("/v1/search", json={"query": {"image": rows[5]["image"]}, "k": 1})
    assert by_image.status_code == 200, by_image.text
    assert by_image.json()["data"][0]["id"] == rows[5]["id"]  # an image finds itself first
    assert by_image.json()["data"][0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_models_list_the_aligned_model_once_loaded(
    aligned_api: httpx.Client, aligned_world: dict[str, Any]
) -> None:
    name = Path(aligned_world["model_dir"]).name
    aligned_api.post("/v1/embeddings", json={"model": name, "input": "warm"})
    cards = {c["id"]: c for c in aligned_api.get("/v1/models").json()["data"]}
    assert cards[name]["kind"] == "embedding"
    assert cards[name]["dim"] == 32
    assert len(cards[name]["modalities"]) == 2


def test_another_aligned_model_cannot_query_its_index(aligned_world: dict[str, Any]) -> None:
    """The index records the folder of the model that made its vectors; a server whose aligned
    model is another folder (here a copy under another name) refuses to search it."""
    from fastapi.testclient import TestClient

    from omnifuse.serve import create_app

    root = aligned_world["root"]
    other = root / "other-aligned"
    shutil.copytree(aligned_world["model_dir"], other)
    shutil.copytree(root / "index", root / "index-copy")  # the running server holds its own
    config = ServeConfig(align_dir=other, index_dir=root / "index-copy")
    with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
        named = client.post("/v1/search", json={"query": "a red circle", "model": other.name})
        assert named.status_code == 400, named.text
        error = named.json()["error"]
        assert error["code"] == "index_model_mismatch"
        assert str(Path(aligned_world["model_dir"]).resolve()) in error["message"]
        auto = client.post("/v1/search", json={"query": "a red circle"})
        assert auto.status_code == 400 and auto.json()["error"]["code"] == "unsupported_modality"
