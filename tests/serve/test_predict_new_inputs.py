"""``/v1/predict`` with the new kinds of input: a sensor track (inline numbers or an ``.npy``
reference) and a table record, against in-process prediction; bad values answer 400 or 422."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from serve_kit import SENSOR_INT8, SENSOR_MODEL, ServeData

from omnifuse.models import load_model


@pytest.fixture(scope="module")
def rows(serve_data: ServeData) -> list[dict[str, Any]]:
    lines = (serve_data.root / "sensors" / "sensors.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["split"] == "test"]


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return {"speed": row["speed"], "unit": row["unit"]}


def _post(api: httpx.Client, inputs: Any, model: str = SENSOR_MODEL) -> httpx.Response:
    return api.post("/v1/predict", json={"model": model, "inputs": inputs, "top_k": 2})


def test_track_and_record_predict_as_in_process(
    api: httpx.Client, serve_data: ServeData, rows: list[dict[str, Any]]
) -> None:
    model = load_model(serve_data.models / SENSOR_MODEL)
    for row in rows[:4]:
        response = _post(api, {"track": row["track"], "record": _record(row)})
        assert response.status_code == 200, response.text
        served = {t["label"]: t["score"] for t in response.json()["data"][0]["top"]}
        logits = model.predict_raw([{"track": row["track"], "record": _record(row)}]).logits
        local = torch.softmax(logits.float(), -1)[0]
        for label, probability in zip(model.config.classes, local.tolist(), strict=True):
            assert served[label] == pytest.approx(probability, abs=1e-4)
    # the same track as an .npy file sent as data, and the record alone (track missing)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows[0]["track"]["values"], dtype=np.float32))
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    response = _post(api, [{"track": {"data": encoded}}, {"record": _record(rows[0])}])
    assert response.status_code == 200, response.text
    assert [d["present"] for d in response.json()["data"]] == [["track"], ["record"]]


def test_an_int8_onnx_folder_serves_like_its_torch_model(
    api: httpx.Client, serve_data: ServeData, rows: list[dict[str, Any]]
) -> None:
    model = load_model(serve_data.models / SENSOR_MODEL)
    agree = 0
    for row in rows[:8]:
        inputs = {"track": row["track"], "record": _record(row)}
        response = _post(api, inputs, SENSOR_INT8)
        assert response.status_code == 200, response.text
        top = response.json()["data"][0]["top"]
        local = torch.softmax(model.predict_raw([inputs]).logits.float(), -1)[0]
        best = model.config.classes[int(local.argmax())]
        agree += top[0]["label"] == best
        assert top[0]["score"] == pytest.approx(float(local.max()), abs=0.05)
    assert agree >= 7
    bad = _post(api, {"track": [[1.0, 2.0, 3.0], [1.0]]}, SENSOR_INT8)
    assert bad.status_code in (400, 422)


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"track": [[1.0, 2.0, 3.0], [1.0]]}, "ragged"),
        ({"track": [[1.0, 2.0]] * 4}, "2 channel"),
        ({"track": {"values": [[1, 2, 3]], "rate": 0}}, "positive"),
        ({"track": [["a", "b", "c"]]}, "numbers"),
        ({"record": {"speed": 3.0}}, "missing declared column"),
        ({"record": {"speed": "fast", "unit": "feet"}}, "not a number"),
        ({"record": "speed=3"}, "JSON object"),
    ],
)
def test_bad_tracks_and_records_answer_4xx(api: httpx.Client, inputs: Any, words: str) -> None:
    response = _post(api, inputs)
    assert response.status_code in (400, 422), response.text
    assert words in response.text
    assert api.get("/healthz").status_code == 200


def test_an_unseen_category_is_an_ordinary_input(
    api: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    response = _post(api, {"track": rows[0]["track"], "record": {"speed": 2.0, "unit": "cubits"}})
    assert response.status_code == 200, response.text
