"""Image encoders: effnet-lite0 (ImageNet), hf-vision (tiny random ViT/CLIP saved to tmp_path),
cnn-image (trainable), and the ImageNet label helpers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    ResNetConfig,
    ResNetModel,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

from omnifuse.encoders import create, describe, list_encoders
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.image import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, normalize_pixels
from omnifuse.encoders.imagenet import imagenet_class_names, top_k_labels
from omnifuse.errors import ConfigError, CorruptInputError, InputError
from omnifuse.types import Encoded

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}
COFFEE_CLASSES = {"espresso", "cup", "coffee mug"}


DROP_CONNECT_SAFE_BATCH = 6
"""In training, EfficientNet drops a block's branch per sample (p ≤ 0.19): with 6 samples the
chance that a block gets no gradient is below 5e-5, and the seed makes it deterministic."""


def random_images(rng: np.random.Generator, count: int, size: int) -> list[np.ndarray]:
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return skdata.chelsea()


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return skdata.coffee()


@pytest.fixture(scope="module")
def mixed_images(tmp_path_factory: pytest.TempPathFactory, chelsea: np.ndarray) -> list[Any]:
    """One image in each raw form: array, PNG bytes, JPEG path, grayscale PIL, float array."""
    jpeg = tmp_path_factory.mktemp("images") / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(jpeg, quality=90)
    camera = Image.fromarray(skdata.camera()[::4, ::4])  # mode "L"
    rng = np.random.default_rng(0)
    return [chelsea, png_bytes(skdata.coffee()), jpeg, camera, rng.random((40, 60, 3))]


@pytest.fixture(scope="module")
def truncated_png(chelsea: np.ndarray) -> bytes:
    encoded = png_bytes(chelsea)
    return encoded[: len(encoded) // 2]


@pytest.fixture(scope="module")
def effnet() -> Encoder:
    return create("effnet-lite0")


@pytest.fixture(scope="module")
def effnet_out(effnet: Encoder, mixed_images: list[Any]) -> Encoded:
    return effnet.encode(mixed_images, batch_size=2)


def assert_contract(out: Encoded, batch: int, tokens: int, dim: int) -> None:
    """Shapes, dtypes, an all-real mask, finiteness, and pooled = mean of the real tokens."""
    assert out.tokens.shape == (batch, tokens, dim)
    assert out.pooled.shape == (batch, dim)
    assert out.tokens.dtype == torch.float32 and out.pooled.dtype == torch.float32
    assert out.mask.dtype == torch.bool and out.mask.shape == (batch, tokens) and out.mask.all()
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()


def assert_batched_equals_single(
    encoder: Encoder, images: list[Any], atol: float, batched: Encoded | None = None
) -> None:
    """Each image encoded alone matches its row of a batched encoding of all of them."""
    batched = encoder.encode(images, batch_size=3) if batched is None else batched
    for i, image in enumerate(images):
        single = encoder.encode([image])
        torch.testing.assert_close(batched.pooled[i], single.pooled[0], atol=atol, rtol=0)
        torch.testing.assert_close(batched.tokens[i], single.tokens[0], atol=atol * 10, rtol=0)


def assert_every_parameter_learns(encoder: Encoder, images: list[Any]) -> None:
    """A loss on tokens and pooled output gives every trainable parameter a nonzero gradient."""
    encoder.train()
    out = encoder.encode(images)
    (out.tokens.square().mean() + out.pooled.square().mean()).backward()
    trained = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    assert trained
    no_grad = [n for n, p in trained if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


# ---------------------------------------------------------------- registry and ImageNet labels


def test_image_encoders_are_registered_with_descriptions() -> None:
    assert {"effnet-lite0", "hf-vision", "cnn-image"} <= set(list_encoders())
    assert describe("effnet-lite0").startswith("EfficientNet-Lite0")
    assert "Hugging Face" in describe("hf-vision")


def test_imagenet_class_names_are_in_standard_order() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    known = {0: "tench", 1: "goldfish", 281: "tabby", 285: "Egyptian cat"}
    known |= {504: "coffee mug", 967: "espresso", 968: "cup", 999: "toilet tissue"}
    assert {i: names[i] for i in known} == known


def test_top_k_labels_gives_softmax_probabilities_best_first() -> None:
    logits = torch.full((2, 1000), -20.0)
    logits[0, [967, 968]] = torch.tensor([2.0, 1.0])
    logits[1, 281] = 5.0
    rows = top_k_labels(logits, k=2)
    (first, p1), (second, p2) = rows[0]
    assert (first, second) == ("espresso", "cup")
    assert p1 == pytest.approx(np.e / (np.e + 1), abs=1e-5) and p1 > p2
    assert rows[1][0][0] == "tabby" and rows[1][0][1] > 0.99
    with pytest.raises(ValueError, match="k must be"):
        top_k_labels(logits, k=0)
    with pytest.raises(ValueError, match="do not match"):
        top_k_labels(torch.zeros(1, 10))


# ---------------------------------------------------------------- effnet-lite0


def test_effnet_contract_on_every_raw_form(
    effnet: Encoder, effnet_out: Encoded, mixed_images: list[Any]
) -> None:
    out = effnet_out
    assert effnet.dim == 1280 and effnet.modality == "image" and not effnet.trainable
    assert not any(p.requires_grad for p in effnet.parameters())
    assert_contract(out, len(mixed_images), 7 * 7, 1280)
    torch.testing.assert_close(out.pooled, out.tokens.mean(dim=1), atol=1e-5, rtol=0)
    assert (out.tokens >= 0).all() and (out.tokens <= 6).all()  # ReLU6 features


def test_effnet_batched_equals_one_by_one(
    effnet: Encoder, effnet_out: Encoded, mixed_images: list[Any]
) -> None:
    first = Encoded(*(part[:3] for part in effnet_out))
    assert_batched_equals_single(effnet, mixed_images[:3], atol=1e-4, batched=first)


def test_effnet_matches_the_raw_network(effnet: Encoder, chelsea: np.ndarray) -> None:
    """Encoder output = the package network's own features, pooling and classifier."""
    pixels = effnet.preprocess(chelsea)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == torch.uint8
    x = normalize_pixels(pixels[None])
    torch.testing.assert_close(x, (pixels[None].float() / 255 - 0.5) / 0.5)
    net: Any = effnet.net
    with torch.inference_mode():
        features = net.extract_features(x)
        expected_logits = net(x)
    out = effnet.encode([chelsea])
    torch.testing.assert_close(out.pooled, features.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.tokens[0, 8], features[0, :, 1, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(effnet.logits([chelsea]), expected_logits, atol=1e-4, rtol=0)


def test_effnet_fine_grid_adds_the_stride_16_map_to_each_final_cell(
    effnet: Encoder, chelsea: np.ndarray
) -> None:
    """grid="fine": (S/16)² cells, each the stride-16 block output followed by the final
    features of the cell it lies in; the final part of pooled is the final map's mean."""
    fine = create("effnet-lite0", grid="fine")
    out, final = fine.encode([chelsea]), effnet.encode([chelsea])
    assert fine.dim == 112 + 1280
    assert_contract(out, 1, 14 * 14, fine.dim)
    torch.testing.assert_close(out.pooled[:, 112:], final.pooled, atol=1e-5, rtol=0)
    cells = out.tokens[0].reshape(14, 14, -1)[..., 112:]
    coarse = final.tokens[0].reshape(7, 7, -1)
    for dy in (0, 1):
        for dx in (0, 1):
            torch.testing.assert_close(cells[dy::2, dx::2], coarse, atol=1e-5, rtol=0)
    net: Any = effnet.net
    x = normalize_pixels(effnet.preprocess(chelsea)[None])
    with torch.inference_mode():
        h = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[:11]:
            h = block(h)
    torch.testing.assert_close(out.tokens[0, :, :112], h[0].flatten(1).T, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="grid"):
        create("effnet-lite0", grid="finest")


def test_effnet_labels_chelsea_as_a_cat_and_coffee_as_coffee(
    effnet: Encoder, chelsea: np.ndarray, coffee: np.ndarray
) -> None:
    cat_labels, coffee_labels = effnet.classify([chelsea, png_bytes(coffee)], k=5)
    assert cat_labels[0][0] in CAT_CLASSES
    assert sum(p for name, p in cat_labels if name in CAT_CLASSES) > 0.8
    assert coffee_labels[0][0] in COFFEE_CLASSES and coffee_labels[0][1] > 0.5
    for labels in (cat_labels, coffee_labels):
        probs = [p for _, p in labels]
        assert len(labels) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1


def test_effnet_bf16_pooled_close_to_fp32(
    effnet: Encoder, chelsea: np.ndarray, coffee: np.ndarray
) -> None:
    half = create("effnet-lite0", dtype="bf16")
    assert half.net._conv_stem.weight.dtype == torch.bfloat16
    images = [chelsea, coffee]
    reference, out = effnet.encode(images), half.encode(images)
    assert out.pooled.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(reference.pooled, out.pooled)
    assert (cosine >= 0.99).all(), cosine
    assert half.classify([chelsea], k=1)[0][0][0] in CAT_CLASSES


def test_effnet_finetune_all_reaches_every_parameter_but_the_classifier() -> None:
    torch.manual_seed(0)
    encoder = create("effnet-lite0", finetune="all", image_size=64)
    assert encoder.trainable and not encoder.net._fc.weight.requires_grad
    rng = np.random.default_rng(1)
    images = random_images(rng, DROP_CONNECT_SAFE_BATCH, 64)
    assert encoder.encode(images).tokens.shape == (DROP_CONNECT_SAFE_BATCH, 2 * 2, 1280)
    assert_every_parameter_learns(encoder, images)
    trained = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert trained == sum(p.numel() for p in encoder.parameters()) - 1280 * 1000 - 1000


def test_effnet_finetune_last_trains_only_the_last_blocks() -> None:
    torch.manual_seed(0)
    encoder = create("effnet-lite0", finetune="last", image_size=64)
    net: Any = encoder.net
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trained} == {"_blocks", "_conv_head", "_bn1"}
    assert {int(n.split(".")[1]) for n in trained if n.startswith("_blocks")} == {14, 15}
    encoder.train()
    assert not net._bn0.training and not net._blocks[0]._bn1.training
    assert net._blocks[15]._bn1.training and net._bn1.training
    stem_stats = net._bn0.running_mean.clone()
    rng = np.random.default_rng(2)
    images = random_images(rng, DROP_CONNECT_SAFE_BATCH, 64)
    assert_every_parameter_learns(encoder, images)
    torch.testing.assert_close(net._bn0.running_mean, stem_stats, atol=0, rtol=0)


def test_effnet_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match="finetune"):
        create("effnet-lite0", finetune="some")
    with pytest.raises(ConfigError, match="image_size"):
        create("effnet-lite0", image_size=16)


def test_truncated_png_raises_typed_error(effnet: Encoder, truncated_png: bytes) -> None:
    with pytest.raises(CorruptInputError) as info:
        effnet.encode([truncated_png])
    assert info.value.modality == "image"
    with pytest.raises(InputError):
        effnet.classify([truncated_png])
    with pytest.raises(InputError):
        create("cnn-image").encode([truncated_png])


# ---------------------------------------------------------------- hf-vision


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer ViT on 32×32 images with a ViT image processor, saved to disk."""
    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip_vision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIP vision tower saved without an image processor."""
    folder = tmp_path_factory.mktemp("tiny-clip-vision")
    torch.manual_seed(0)
    config = CLIPVisionConfig(image_size=32, patch_size=8, projection_dim=16, **TINY)
    CLIPVisionModel(config).save_pretrained(folder)
    return folder


def test_hf_vit_uses_its_processor_and_cls_token(
    tiny_vit: Path, mixed_images: list[Any], chelsea: np.ndarray
) -> None:
    encoder = create("hf-vision", model=str(tiny_vit))
    assert encoder.dim == 32 and not encoder.trainable and encoder.pool == "cls"
    out = encoder.encode(mixed_images)
    assert_contract(out, len(mixed_images), 1 + 4 * 4, 32)
    torch.testing.assert_close(out.pooled, out.tokens[:, 0], atol=0, rtol=0)
    reference = ViTModel.from_pretrained(tiny_vit).eval()
    pixels = ViTImageProcessor.from_pretrained(tiny_vit)(images=chelsea, return_tensors="pt")
    with torch.inference_mode():
        expected = reference(**pixels).last_hidden_state
    torch.testing.assert_close(encoder.encode([chelsea]).tokens, expected, atol=1e-5, rtol=0)
    assert_batched_equals_single(encoder, mixed_images, atol=1e-5)


def test_hf_clip_tower_defaults_to_pooler_and_clip_normalisation(
    tiny_clip_vision: Path, mixed_images: list[Any]
) -> None:
    encoder = create("hf-vision", model=str(tiny_clip_vision))
    assert encoder.processor is None and encoder.pool == "pooler"
    grey = np.full((20, 30, 3), 128, dtype=np.uint8)
    pixels = encoder.preprocess(grey)
    expected = (128 / 255 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    assert pixels.shape == (3, 32, 32)
    torch.testing.assert_close(pixels[:, 5, 7], expected)
    out = encoder.encode(mixed_images)
    assert_contract(out, len(mixed_images), 17, 32)
    model: Any = encoder.model
    with torch.inference_mode():
        pooled = model(pixel_values=pixels[None]).pooler_output
    torch.testing.assert_close(encoder.encode([grey]).pooled, pooled, atol=1e-5, rtol=0)
    assert_batched_equals_single(encoder, mixed_images, atol=1e-5)


def test_hf_full_clip_checkpoint_loads_only_the_vision_tower(
    tmp_path: Path, chelsea: np.ndarray
) -> None:
    text = {"vocab_size": 99, "max_position_embeddings": 16, **TINY}
    vision = {"image_size": 32, "patch_size": 8, **TINY}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision)).save_pretrained(tmp_path)
    encoder = create("hf-vision", model=str(tmp_path), pool="mean")
    assert type(encoder.model).__name__ == "CLIPVisionModel"
    out = encoder.encode([chelsea])
    assert_contract(out, 1, 17, 32)
    torch.testing.assert_close(out.pooled, out.tokens.mean(dim=1), atol=1e-6, rtol=0)


def test_hf_convolutional_model_flattens_its_feature_map(
    tmp_path: Path, mixed_images: list[Any]
) -> None:
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    ResNetModel(config).save_pretrained(tmp_path)
    encoder = create("hf-vision", model=str(tmp_path))
    assert encoder.pool == "mean" and encoder.dim == 16 and encoder.image_size == 224
    out = encoder.encode(mixed_images[:2])
    assert_contract(out, 2, 28 * 28, 16)  # stem /4, second stage /2: 224 / 8 = 28 a side
    pooler = create("hf-vision", model=str(tmp_path), pool="pooler").encode(mixed_images[:2])
    torch.testing.assert_close(pooler.pooled, out.pooled, atol=1e-5, rtol=0)


def test_hf_vision_finetune_reaches_every_parameter(
    tiny_clip_vision: Path, mixed_images: list[Any]
) -> None:
    encoder = create("hf-vision", model=str(tiny_clip_vision), finetune="all")
    assert encoder.trainable
    assert_every_parameter_learns(encoder, mixed_images[:3])


def test_hf_vision_bad_options_and_missing_model(tiny_vit: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline"):
        create("hf-vision", model=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="pool"):
        create("hf-vision", model=str(tiny_vit), pool="max")


# ---------------------------------------------------------------- cnn-image


def test_cnn_image_contract_and_defaults(mixed_images: list[Any]) -> None:
    encoder = create("cnn-image")
    assert encoder.trainable and encoder.dim == 128 and encoder.image_size == 32
    encoder.eval()
    out = encoder.encode(mixed_images)
    assert_contract(out, len(mixed_images), 4 * 4, 128)
    torch.testing.assert_close(out.pooled, out.tokens.mean(dim=1), atol=1e-6, rtol=0)
    assert out.tokens.std() > 0


def test_cnn_image_batched_equals_single_in_train_mode(mixed_images: list[Any]) -> None:
    torch.manual_seed(0)
    encoder = create("cnn-image", dim=48, image_size=64, channels=(8, 16, 32))
    encoder.train()
    with torch.no_grad():
        assert encoder.encode(mixed_images).tokens.shape == (len(mixed_images), 4 * 4, 48)
        assert_batched_equals_single(encoder, mixed_images, atol=1e-5)


def test_cnn_image_every_parameter_learns(mixed_images: list[Any]) -> None:
    torch.manual_seed(0)
    encoder = create("cnn-image", dim=32, channels=(8, 16))
    assert_every_parameter_learns(encoder, mixed_images)


def test_cnn_image_bf16_autocast_keeps_fp32_weights(chelsea: np.ndarray) -> None:
    torch.manual_seed(0)
    reference = create("cnn-image")
    half = create("cnn-image", dtype="bf16")
    half.load_state_dict(reference.state_dict())
    assert next(half.parameters()).dtype == torch.float32
    out, expected = half.encode([chelsea]), reference.encode([chelsea])
    assert out.pooled.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(out.pooled, expected.pooled)
    assert cosine.item() > 0.99


def test_cnn_image_rejects_incompatible_size() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        create("cnn-image", image_size=36)
