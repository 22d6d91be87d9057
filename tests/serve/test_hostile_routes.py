"""Hostile requests to the routes beyond the media inputs of :mod:`test_malformed`: consistency,
image generation, model cards and listing, health, metrics, the web page's tab routes (item
pictures, experiments, speech), and a foreign Host. Each is answered like the main corpus (a
JSON 4xx whose message names what was wrong), and every route of the API meets at least one
hostile request in the two corpora."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_malformed import CORPUS as INPUTS
from test_malformed import Bad, assert_refused

ROUTES: list[Bad] = [
    Bad("item image without an id", 422, path="/v1/items/image", method="GET", message="id"),
    Bad(
        "item image of an unknown item",
        404,
        path="/v1/items/image?id=..%2F..%2Fetc%2Fpasswd",
        method="GET",
        message="no indexed item",
    ),
    Bad(
        "item image of a text item",
        404,
        path="/v1/items/image?id=s00",
        method="GET",
        message="has no image",
    ),
    Bad(
        "item image size out of range", 422, path="/v1/items/image?id=s00&size=100000", method="GET"
    ),
    Bad("experiments listing by POST", 405, path="/v1/experiments", json={}),
    Bad(
        "experiment on a server without experiments",
        404,
        path="/v1/experiments/sweeps:world",
        method="GET",
        message="--experiments",
    ),
    Bad(
        "experiment path traversal",
        404,
        path="/v1/experiments/..%2F..%2Fetc/plots/passwd",
        method="GET",
    ),
    Bad(
        "experiment plot outside its folder",
        404,
        path="/v1/experiments/x/plots/..%2F..%2F..%2Fetc%2Fpasswd",
        method="GET",
    ),
    Bad(
        "speech by an unknown model",
        404,
        path="/v1/audio/speech",
        json={"input": "hi", "model": "nope"},
    ),
    Bad(
        "speech in a voice with a path",
        400,
        path="/v1/audio/speech",
        json={"input": "hi", "voice": "../../etc/passwd"},
        message="voice",
    ),
    Bad("speech of nothing", 422, path="/v1/audio/speech", json={"input": ""}),
    Bad("speech over the input limit", 422, path="/v1/audio/speech", json={"input": "a" * 5000}),
    Bad(
        "speech as mp3",
        422,
        path="/v1/audio/speech",
        json={"input": "hi", "response_format": "mp3"},
    ),
    Bad(
        "consistency of one input",
        422,
        path="/v1/consistency",
        json={"text": "a red circle"},
        message="two or more",
    ),
    Bad(
        "consistency image of wrong type",
        422,
        path="/v1/consistency",
        json={"text": "a red circle", "image": 5},
    ),
    Bad(
        "consistency without an aligned model",
        404,
        path="/v1/consistency",
        json={"text": "a red circle", "image": {"path": "../../etc/passwd"}},
        message="no aligned model",
    ),
    Bad(
        "image prompt over the limit",
        422,
        path="/v1/images/generations",
        json={"prompt": "a" * 5000},
    ),
    Bad(
        "too many images",
        422,
        path="/v1/images/generations",
        json={"prompt": "a red circle", "n": 100},
    ),
    Bad(
        "image steps of wrong type",
        422,
        path="/v1/images/generations",
        json={"prompt": "a red circle", "steps": "many"},
    ),
    Bad(
        "images without a generator",
        404,
        path="/v1/images/generations",
        json={"prompt": "a red circle"},
        message="no image generator",
    ),
    Bad("unknown model card", 404, path="/v1/models/gpt-4o", method="GET", message="no model"),
    Bad("model card of a huge id", 404, path="/v1/models/" + "a" * 5000, method="GET"),
    Bad("model list by POST", 405, path="/v1/models", json={}),
    Bad("health by DELETE", 405, path="/healthz", method="DELETE"),
    Bad("metrics by POST", 405, path="/metrics", json={}),
    Bad(
        "foreign Host",
        400,
        json={"model": "minilm", "input": "x"},
        headers={"Host": "evil.example"},
        message="not a name of this server",
    ),
]


@pytest.mark.parametrize("bad", ROUTES, ids=[b.name for b in ROUTES])
def test_hostile_request_is_a_json_4xx(api: httpx.Client, bad: Bad) -> None:
    assert_refused(bad, bad.send(api))


def test_every_route_is_in_a_corpus(server: Any) -> None:
    """Each route of the API meets at least one hostile request (the foreign Host aside, which
    ``test_hosts`` sends to every route)."""
    from web_fixtures import served_routes

    corpus = [*INPUTS, *ROUTES]
    paths = {bad.path.split("?")[0] for bad in corpus if "Host" not in bad.headers}
    api = [route for route in served_routes(server.app) if route.include_in_schema]
    assert len(api) >= 11
    missing = [
        route.path for route in api if not any(route.path_regex.match(path) for path in paths)
    ]
    assert not missing, f"routes without a hostile request in the corpus: {missing}"
