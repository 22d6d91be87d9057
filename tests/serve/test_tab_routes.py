"""The routes behind the page's Search, Chat and Experiments tabs, against the real app:

- ``GET /v1/experiments`` (+ ``/{id}``, ``/{id}/plots/{name}``) over a real sweep and tune study:
  leaderboards parsed as the CSV holds them, per-strategy results, plots byte for byte; unknown
  names, files outside the folders and files that are not PNG refused with typed 4xx;
- ``GET /v1/items/image``: an indexed item's picture, only under the allowed root, only images,
  only up to the size limit (``POST /v1/audio/speech``, the Chat tab's voice, has its own tests
  in ``test_speech_route.py``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tabs_kit import SWEEP_ID, SWEEP_STRATEGIES, TUNE_ID, client_for, error_of, experiments_folder

from omnifuse.serve import ServeConfig, ServeLimits

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

MEDIA_LIMIT = 64 * 1024


# ---------------------------------------------------------------- experiments


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's experiments folder, with hostile and damaged additions: a text
    file named like a plot, a plot that is a symlink out of its folder, a folder linked in
    from outside, and a sweep whose results file is damaged."""
    root = tmp_path_factory.mktemp("experiments") / "experiments"
    shutil.copytree(experiments_folder(tmp_path_factory.getbasetemp()), root, symlinks=True)
    sweep = root / "sweeps" / "av-digits"
    (sweep / "notes.png").write_text("not a picture\n")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"secret" * 10)
    (sweep / "escape.png").symlink_to(outside / "secret.png")
    shutil.copytree(sweep, outside / "linked-sweep")
    (root / "linked").symlink_to(outside / "linked-sweep", target_is_directory=True)
    damaged = root / "sweeps" / "damaged"
    damaged.mkdir()
    shutil.copy(sweep / "leaderboard.csv", damaged / "leaderboard.csv")
    (damaged / "results.json").write_text('{"results": [')
    return root


@pytest.fixture(scope="module")
def api(experiments: Path) -> Iterator[TestClient]:
    with client_for(ServeConfig(experiments_dir=experiments)) as client:
        yield client


def test_every_sweep_and_tune_folder_is_listed(api: TestClient, experiments: Path) -> None:
    listing = api.get("/v1/experiments").json()["data"]
    by_id = {card["id"]: card for card in listing}
    assert sorted(by_id) == sorted([SWEEP_ID, TUNE_ID, "sweeps:damaged"])  # not the linked one
    sweep, tune = by_id[SWEEP_ID], by_id[TUNE_ID]
    assert (sweep["kind"], tune["kind"]) == ("sweep", "tune")
    assert sweep["title"] == "av-digits sweep"
    assert sweep["rows"] == len(SWEEP_STRATEGIES)
    folder = experiments / "sweeps" / "av-digits"
    written = sorted(p.name for p in folder.glob("*.png") if not p.is_symlink())
    assert "accuracy_latency.png" in written and "contributions.png" in written
    assert sweep["plots"] == written  # the symlink out of the folder is not among them
    assert "escape.png" not in sweep["plots"]
    assert tune["plots"] == ["pareto.png"]


def test_a_sweep_leaderboard_is_parsed_as_its_csv_holds_it(
    api: TestClient, experiments: Path
) -> None:
    detail = api.get(f"/v1/experiments/{SWEEP_ID}").json()
    with (experiments / "sweeps" / "av-digits" / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert detail["columns"] == list(rows[0])
    assert [row["strategy"] for row in detail["table"]] == [row["strategy"] for row in rows]
    for shown, written in zip(detail["table"], rows, strict=True):
        assert shown["rank"] == int(written["rank"])
        assert shown["accuracy"] == pytest.approx(float(written["accuracy"]))
    assert detail["problems"] == []


def test_a_sweep_gives_each_model_its_missing_modality_and_contribution_views(
    api: TestClient, experiments: Path
) -> None:
    detail = api.get(f"/v1/experiments/{SWEEP_ID}").json()
    models = {m["name"]: m for m in detail["models"]}
    assert set(models) == SWEEP_STRATEGIES
    results = json.loads((experiments / "sweeps" / "av-digits" / "results.json").read_text())
    concat = next(r for r in results["results"] if r["name"] == "concat")
    shown = models["concat"]
    assert sorted(shown["modalities"]) == ["audio", "image"]
    present = sorted(tuple(sorted(s["present"])) for s in shown["subsets"])
    assert present == [("audio",), ("audio", "image"), ("image",)]
    for subset, written in zip(shown["subsets"], concat["subsets"], strict=True):
        assert subset["accuracy"] == pytest.approx(written["accuracy"])
    assert shown["shapley"] == pytest.approx(concat["shapley"])
    assert sum(shown["shapley"].values()) != 0
    assert shown["accuracy"] == pytest.approx(concat["metrics"]["accuracy"])
    assert detail["summary"]["summary"], "sweep.json's summary"


def test_a_tune_study_shows_its_trials_and_best_without_its_storage(api: TestClient) -> None:
    detail = api.get(f"/v1/experiments/{TUNE_ID}").json()
    assert detail["kind"] == "tune" and detail["models"] == []
    assert "trial" in detail["columns"] and "val" in detail["columns"]
    assert len(detail["table"]) == 3
    assert detail["summary"]["best"]["trial"] in detail["summary"]["pareto"]
    assert detail["summary"]["objectives"] == ["accuracy", "latency", "params"]
    assert "storage" not in detail["summary"]
    assert "/" not in detail["title"], "a manifest is named, not the server path it came from"


def test_a_plot_is_served_byte_for_byte(api: TestClient, experiments: Path) -> None:
    response = api.get(f"/v1/experiments/{SWEEP_ID}/plots/accuracy_latency.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    path = experiments / "sweeps" / "av-digits" / "accuracy_latency.png"
    assert response.content == path.read_bytes()
    assert Image.open(io.BytesIO(response.content)).size[0] > 100


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/experiments/nope", 404, "experiment_not_found"),
        ("/v1/experiments/sweeps:nope/plots/pareto.png", 404, "experiment_not_found"),
        ("/v1/experiments/linked", 404, "experiment_not_found"),
        ("/v1/experiments/..:..:etc", 404, "experiment_not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/leaderboard.csv", 404, "plot_not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/results.json", 404, "plot_not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/escape.png", 404, "plot_not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/..%2Fsweep.json", 404, "not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/%2Fetc%2Fhostname", 404, "not_found"),
        (f"/v1/experiments/{SWEEP_ID}/plots/notes.png", 415, "unsupported_format"),
        (f"/v1/experiments/{SWEEP_ID}/plots/{'x' * 300}.png", 422, "validation_error"),
    ],
)
def test_names_outside_the_folders_are_refused(
    api: TestClient, path: str, status: int, code: str
) -> None:
    error = error_of(api.get(path), status)
    assert error["code"] == code
    assert "secret" not in error["message"]


def test_a_damaged_results_file_is_reported_not_raised(api: TestClient) -> None:
    detail = api.get("/v1/experiments/sweeps:damaged").json()
    assert detail["models"] == [] and len(detail["table"]) == len(SWEEP_STRATEGIES)
    assert any(p.startswith("results.json") for p in detail["problems"])


def test_a_server_without_experiments_lists_none() -> None:
    with client_for(ServeConfig()) as client:
        assert client.get("/v1/experiments").json() == {"object": "list", "data": []}
        error = error_of(client.get(f"/v1/experiments/{SWEEP_ID}"), 404)
        assert "--experiments" in error["message"]


# ---------------------------------------------------------------- item pictures


def png_bytes(
    size: tuple[int, int] = (80, 60), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def png_announcing(width: int, height: int) -> bytes:
    """A well-formed PNG header announcing ``width``×``height`` pixels, with almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server whose index holds items pointing at pictures inside and outside its allowed
    root, at files that are not pictures, too large or missing, and at none."""
    from omnifuse.index import create_index

    base = tmp_path_factory.mktemp("pictures")
    root = base / "allowed"
    (root / "pics").mkdir(parents=True)
    (root / "pics" / "red.png").write_bytes(png_bytes())
    Image.new("RGB", (60, 40), (10, 120, 240)).save(root / "pics" / "blue.tiff")
    (root / "pics" / "notes.png").write_text("just text, named like a picture\n")
    (root / "pics" / "big.png").write_bytes(png_bytes() + b"\0" * MEDIA_LIMIT)
    (root / "pics" / "bomb.png").write_bytes(png_announcing(100_000, 100_000))
    (base / "outside.png").write_bytes(png_bytes())
    (root / "pics" / "link.png").symlink_to(base / "outside.png")
    thumb = "data:image/png;base64," + base64.b64encode(png_bytes((24, 24))).decode()
    items = {
        "red": {"modality": "image", "source": str(root / "pics" / "red.png")},
        "caption": {"modality": "text", "source": "a red card", "image": "pics/red.png"},
        "tiff": {"modality": "image", "source": str(root / "pics" / "blue.tiff")},
        "thumb": {"modality": "text", "source": "a thumbnail only", "thumbnail": thumb},
        "outside": {"modality": "image", "source": str(base / "outside.png")},
        "etc": {"modality": "image", "source": "/etc/hostname"},
        "traversal": {"modality": "image", "source": "../outside.png"},
        "link": {"modality": "image", "source": str(root / "pics" / "link.png")},
        "notes": {"modality": "image", "source": str(root / "pics" / "notes.png")},
        "big": {"modality": "image", "source": str(root / "pics" / "big.png")},
        "bomb": {"modality": "image", "source": str(root / "pics" / "bomb.png")},
        "gone": {"modality": "image", "source": str(root / "pics" / "gone.png")},
        "url": {"modality": "image", "source": "http://example.com/a.png"},
        "words": {"modality": "text", "source": "no picture here"},
    }
    index = create_index("faiss-flat", base / "index", dim=4, metric="ip")
    vectors = np.eye(len(items), 4, dtype=np.float32) + 0.1
    index.add(list(items), vectors, list(items.values()))
    index.close()
    limits = ServeLimits(max_media_bytes=MEDIA_LIMIT)
    config = ServeConfig(index_dir=base / "index", allowed_root=root, limits=limits)
    with client_for(config) as client:
        yield client


def test_an_item_picture_is_served_from_the_allowed_root(pictures: TestClient) -> None:
    for item in ("red", "caption"):
        response = pictures.get("/v1/items/image", params={"id": item})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.content == png_bytes()
    thumb = pictures.get("/v1/items/image", params={"id": "thumb"})
    assert Image.open(io.BytesIO(thumb.content)).size == (24, 24)


def test_a_picture_is_scaled_to_the_size_asked_and_odd_formats_converted(
    pictures: TestClient,
) -> None:
    scaled = pictures.get("/v1/items/image", params={"id": "red", "size": 40})
    assert scaled.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(scaled.content))
    assert image.size == (40, 30)
    assert image.getpixel((20, 15))[0] > 150  # still red
    tiff = pictures.get("/v1/items/image", params={"id": "tiff"})
    assert tiff.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(tiff.content)).size == (60, 40)


@pytest.mark.parametrize(
    ("item", "status", "code"),
    [
        ("outside", 403, "path_not_allowed"),
        ("etc", 403, "path_not_allowed"),
        ("traversal", 403, "path_not_allowed"),
        ("link", 403, "path_not_allowed"),
        ("notes", 415, "unsupported_format"),
        ("big", 413, "too_large"),
        ("gone", 404, "no_file"),
        ("url", 404, "no_image"),
        ("words", 404, "no_image"),
        ("bomb", 413, "too_large"),
        ("no-such-item", 404, "item_not_found"),
        ("../../etc/passwd", 404, "item_not_found"),
    ],
)
def test_an_item_picture_that_cannot_be_served_is_refused(
    pictures: TestClient, item: str, status: int, code: str
) -> None:
    error = error_of(pictures.get("/v1/items/image", params={"id": item}), status)
    assert error["code"] == code


@pytest.mark.parametrize("query", [{}, {"id": ""}, {"id": "red", "size": 4}, {"id": "x" * 600}])
def test_bad_item_picture_requests_are_422(pictures: TestClient, query: dict[str, Any]) -> None:
    assert error_of(pictures.get("/v1/items/image", params=query), 422)["code"]


def test_item_pictures_need_an_index() -> None:
    with client_for(ServeConfig()) as client:
        assert error_of(client.get("/v1/items/image?id=red"), 404)["code"] == "no_index"


@pytest.mark.parametrize(
    ("method", "path", "statuses", "answer"),
    [
        ("get", "/v1/items/image", {403, 404, 413, 415, 422}, "image/png"),
        ("get", "/v1/experiments/{experiment_id}", {404, 422}, "application/json"),
        ("get", "/v1/experiments/{experiment_id}/plots/{name}", {404, 413, 415, 422}, "image/png"),
        ("post", "/v1/audio/speech", {400, 404, 413, 422, 503, 504}, "audio/wav"),
    ],
)
def test_every_refusal_above_is_declared_in_the_api_description(
    method: str, path: str, statuses: set[int], answer: str
) -> None:
    from omnifuse.serve import create_app

    responses = create_app(ServeConfig()).openapi()["paths"][path][method]["responses"]
    assert statuses <= {int(s) for s in responses if s[0] in "45"}
    assert answer in responses["200"]["content"]
