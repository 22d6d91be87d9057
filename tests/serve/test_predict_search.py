"""``/v1/predict`` against in-process prediction (any subset of modalities, explanations) and
``/v1/search`` over a real FAISS index (nearest sentence, filters, dimension checks)."""

from __future__ import annotations

import base64
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from serve_kit import DIGITS_MODEL, SENTENCES, ServeData

from omnifuse.io import load_audio, load_image
from omnifuse.models import load_model


def data_uri(path: Path, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def digits(serve_data: ServeData) -> list[dict[str, Any]]:
    return [r for r in serve_data.digit_rows() if r["split"] == "test"][:6]


@pytest.fixture(scope="module")
def local_model(serve_data: ServeData) -> Any:
    return load_model(serve_data.models / DIGITS_MODEL)


def local_probabilities(model: Any, serve_data: ServeData, row: dict[str, Any]) -> np.ndarray:
    sample = {
        "image": load_image(serve_data.digits / row["image"]),
        "audio": (load_audio(serve_data.digits / row["audio"]), 16000),
    }
    logits = model.predict_raw([sample]).logits
    return torch.softmax(logits.float(), -1)[0].numpy()


def test_prediction_equals_in_process_prediction(
    api: httpx.Client, serve_data: ServeData, digits: list[dict[str, Any]], local_model: Any
) -> None:
    row = digits[0]
    body = {
        "model": DIGITS_MODEL,
        "inputs": {
            "image": data_uri(serve_data.digits / row["image"], "image/png"),
            "audio": {
                "data": base64.b64encode((serve_data.digits / row["audio"]).read_bytes()).decode(
                    "ascii"
                )
            },
        },
        "top_k": 10,
    }
    response = api.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["data"]
    expected = local_probabilities(local_model, serve_data, row)
    got = {item["label"]: item["score"] for item in prediction["top"]}
    assert len(got) == 10
    np.testing.assert_allclose([got[str(d)] for d in range(10)], expected, atol=1e-5)
    assert prediction["label"] == str(int(expected.argmax()))
    assert prediction["present"] == ["audio", "image"]
    assert set(prediction["weights"]) == {"audio", "image"}  # the gated fusion's weights


def test_contributions_are_exact_shapley_values(
    api: httpx.Client, serve_data: ServeData, digits: list[dict[str, Any]], local_model: Any
) -> None:
    """Two players: φ_I = ½(v(I) − v(∅)) + ½(v(IA) − v(A)), and φ_I + φ_A = v(IA) − v(∅)."""
    row = digits[1]
    paths = {
        "image": str(serve_data.digits / row["image"]),
        "audio": str(serve_data.digits / row["audio"]),
    }
    response = api.post("/v1/predict", json={"model": DIGITS_MODEL, "inputs": paths})
    assert response.status_code == 200, response.text
    prediction = response.json()["data"][0]
    label = int(prediction["label"])
    decoded = {
        "image": load_image(paths["image"]),
        "audio": (load_audio(paths["audio"]), 16000),
    }
    value = {}
    for size in range(3):
        for subset in itertools.combinations(("image", "audio"), size):
            sample = {m: decoded[m] for m in subset}
            if sample:
                logits = local_model.predict_raw([sample]).logits
            else:  # no modality present: the model's all-missing prediction
                with torch.inference_mode():
                    logits = local_model(*_empty_inputs(local_model)).logits
            value[frozenset(subset)] = float(torch.softmax(logits.float(), -1)[0, label])
    full, empty = value[frozenset({"image", "audio"})], value[frozenset()]
    phi_image = 0.5 * (value[frozenset({"image"})] - empty) + 0.5 * (
        full - value[frozenset({"audio"})]
    )
    contributions = prediction["contributions"]
    assert contributions["image"] == pytest.approx(phi_image, abs=1e-5)
    assert contributions["image"] + contributions["audio"] == pytest.approx(full - empty, abs=1e-5)
    assert prediction["score"] == pytest.approx(full, abs=1e-5)


def _empty_inputs(model: Any) -> tuple[dict[str, Any], torch.Tensor]:
    from omnifuse.types import Encoded

    features = {
        m: Encoded(torch.zeros(1, 1, d), torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, d))
        for m, d in model.config.modalities.items()
    }
    return features, torch.zeros(1, len(model.modalities), dtype=torch.bool)


def test_one_modality_is_enough_and_matches_in_process(
    api: httpx.Client, serve_data: ServeData, digits: list[dict[str, Any]], local_model: Any
) -> None:
    row = digits[2]
    response = api.post(
        "/v1/predict",
        json={"model": DIGITS_MODEL, "inputs": [{"audio": str(serve_data.digits / row["audio"])}]},
    )
    assert response.status_code == 200, response.text
    prediction = response.json()["data"][0]
    assert prediction["present"] == ["audio"]
    assert set(prediction["contributions"]) == {"audio"}
    logits = local_model.predict_raw(
        [{"audio": (load_audio(serve_data.digits / row["audio"]), 16000)}]
    ).logits
    expected = torch.softmax(logits.float(), -1)[0]
    assert prediction["score"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_concurrent_predictions_are_batched_and_each_gets_its_own_answer(
    api: httpx.Client, serve_data: ServeData, digits: list[dict[str, Any]]
) -> None:
    def ask(row: dict[str, Any]) -> str:
        inputs = {
            "image": str(serve_data.digits / row["image"]),
            "audio": str(serve_data.digits / row["audio"]),
        }
        response = api.post("/v1/predict", json={"model": DIGITS_MODEL, "inputs": inputs})
        assert response.status_code == 200, response.text
        return str(response.json()["data"][0]["label"])

    alone = [ask(row) for row in digits]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(ask, digits * 3))
    assert together == alone * 3


def test_predict_errors_name_the_problem(api: httpx.Client, serve_data: ServeData) -> None:
    unknown = api.post("/v1/predict", json={"model": "nope", "inputs": {"image": "x.png"}})
    assert unknown.status_code == 404
    assert DIGITS_MODEL in unknown.json()["error"]["message"]
    column = api.post("/v1/predict", json={"model": DIGITS_MODEL, "inputs": {"text": "three"}})
    assert column.status_code == 400
    assert "no input 'text'" in column.json()["error"]["message"]
    empty = api.post("/v1/predict", json={"model": DIGITS_MODEL, "inputs": {}})
    assert empty.status_code == 422


def test_search_finds_the_nearest_sentence(api: httpx.Client) -> None:
    response = api.post("/v1/search", json={"query": "a sleeping cat", "k": 3})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model"] == "minilm" and result["modality"] == "text"
    top = result["data"][0]
    assert top["metadata"]["source"] == "the cat sleeps on the warm windowsill"
    assert top["id"] == "s03"
    scores = [hit["score"] for hit in result["data"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3


def test_search_filters_on_metadata(api: httpx.Client) -> None:
    equal = api.post(
        "/v1/search",
        json={"query": {"text": "a sleeping cat"}, "k": 5, "filter": {"label": "food"}},
    )
    assert equal.status_code == 200, equal.text
    assert {h["metadata"]["label"] for h in equal.json()["data"]} == {"food"}
    ranged = api.post(
        "/v1/search",
        json={
            "query": "shapes",
            "k": 20,
            "filter": {"label": ["shapes", "travel"], "rank": {"$gte": 2}},
        },
    )
    hits = ranged.json()["data"]
    expected = {(t, r) for _, t, r in SENTENCES if t in ("shapes", "travel") and r >= 2}
    assert {(h["metadata"]["label"], h["metadata"]["rank"]) for h in hits} == expected


def test_search_refuses_what_it_cannot_answer(api: httpx.Client, serve_data: ServeData) -> None:
    digits = serve_data.digit_rows()
    image = api.post(
        "/v1/search", json={"query": {"image": str(serve_data.digits / digits[0]["image"])}}
    )
    assert image.status_code == 400
    assert "384-d" in image.json()["error"]["message"]
    operator = api.post("/v1/search", json={"query": "cat", "filter": {"rank": {"$near": 2}}})
    assert operator.status_code == 422
    assert "$near" in operator.json()["error"]["message"]
    too_many = api.post("/v1/search", json={"query": "cat", "k": 10_000})
    assert too_many.status_code == 422
