"""``/v1/images/generations`` in OpenAI's shape on a real server: base64 PNGs of the generator's
size, the same seed the same pixels with either sampler, and 4xx for empty or oversized prompts,
zero steps, NaN guidance, an unknown sampler, another size or URL output — while the server keeps
answering."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
import torch
from PIL import Image

from omnifuse.generate import GeneratorConfig, TextToImage, UNetConfig, save_generator
from omnifuse.serve import ServeConfig
from omnifuse.serve.runner import BackgroundServer

TINY_TEXT = {"name": "transformer-text", "dim": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def images_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("gen") / "tiny-generator"
    unet = UNetConfig(image_size=16, widths=[16, 32], attention_levels=[1], heads=2, context_dim=32)
    model = TextToImage(GeneratorConfig(text_encoder=TINY_TEXT, unet=unet))
    with torch.no_grad():  # an untrained UNet's last layer is zero: no flow, the same image for
        torch.manual_seed(0)  # every sampler; random weights make the samplers differ
        model.unet.conv_out.weight.normal_(0.0, 0.05)
    save_generator(model, folder)
    config = ServeConfig(port=0, generator_dir=folder)
    with (
        BackgroundServer(config) as running,
        httpx.Client(base_url=running.url, timeout=120) as client,
    ):
        yield client


def _pngs(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [base64.b64decode(d["b64_json"]) for d in response.json()["data"]]


def test_images_come_back_as_pngs_and_repeat_for_a_seed(images_api: httpx.Client) -> None:
    body = {"prompt": "a red circle to the left of a blue square", "n": 2, "steps": 3, "seed": 5}
    first = _pngs(images_api.post("/v1/images/generations", json=body))
    assert len(first) == 2 and first[0] != first[1]
    assert Image.open(io.BytesIO(first[0])).size == (16, 16)
    assert _pngs(images_api.post("/v1/images/generations", json=body)) == first
    sized = {**body, "n": 1, "size": "16x16", "model": "tiny-generator"}
    assert len(_pngs(images_api.post("/v1/images/generations", json=sized))) == 1


def test_the_heun_sampler_repeats_for_a_seed(images_api: httpx.Client) -> None:
    body = {"prompt": "two green stars", "steps": 3, "seed": 9}
    heun = _pngs(images_api.post("/v1/images/generations", json={**body, "sampler": "heun"}))
    assert (
        _pngs(images_api.post("/v1/images/generations", json={**body, "sampler": "heun"})) == heun
    )
    euler = _pngs(images_api.post("/v1/images/generations", json={**body, "sampler": "euler"}))
    assert euler == _pngs(images_api.post("/v1/images/generations", json=body)) != heun


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"prompt": ""}', 400),
        (b'{"prompt": "   "}', 400),
        (b'{"prompt": "' + b"x" * 5000 + b'"}', 422),
        (b'{"prompt": "a red circle", "steps": 0}', 422),
        (b'{"prompt": "a red circle", "guidance": NaN}', 422),
        (b'{"prompt": "a red circle", "sampler": "rk4"}', 422),
        (b'{"prompt": "a red circle", "sampler": null}', 422),
        (b'{"prompt": "a red circle", "size": "1024x1024"}', 400),
        (b'{"prompt": "a red circle", "response_format": "url"}', 422),
        (b'{"prompt": "a red circle", "model": "dall-e-3"}', 404),
        (b'{"prompt": 3}', 422),
        (b"not json", 400),
    ],
)
def test_bad_requests_are_4xx(images_api: httpx.Client, content: bytes, status: int) -> None:
    response = images_api.post(
        "/v1/images/generations", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert images_api.get("/healthz").status_code == 200


def test_a_server_without_a_generator_says_so(api: httpx.Client) -> None:
    response = api.post("/v1/images/generations", json={"prompt": "a red circle"})
    assert response.status_code == 404 and "--generator" in response.text
