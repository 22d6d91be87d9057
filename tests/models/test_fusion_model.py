"""Fusion models: assembly from a config, presence handling, save/load round trips, typed errors
for broken model folders, raw-input prediction."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.data.cache import CachedBatch
from omnifuse.errors import ConfigError
from omnifuse.models import (
    InvalidModelError,
    ModelConfig,
    build_model,
    load_model,
    read_metrics,
    save_model,
)
from omnifuse.types import Encoded

DIMS = {"audio": 12, "image": 20}
CLASSES = ["a", "b", "c"]


def features(batch: int, seed: int = 0) -> dict[str, Encoded]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in DIMS.items():
        tokens = torch.randn(batch, 5, d, generator=g)
        out[m] = Encoded(tokens, torch.ones(batch, 5, dtype=torch.bool), tokens.mean(1))
    return out


def model_of(**fields: object) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig.from_dict({"modalities": DIMS, "classes": CLASSES, **fields})
    return build_model(config).eval()


def test_feature_fusion_gets_a_head_and_decision_fusion_none() -> None:
    model = model_of(fusion="concat", head_cfg={"hidden": 16})
    out = model(features(4), torch.ones(4, 2, dtype=torch.bool))
    assert out.logits.shape == (4, 3)
    assert model.head is not None
    late = model_of(fusion="late-mean")
    assert late.head is None
    out = late(features(4), torch.ones(4, 2, dtype=torch.bool))
    assert out.logits.shape == (4, 3)
    assert set(out.fusion.modality_logits) == {"audio", "image"}


def test_architecture_is_the_fusion_name() -> None:
    assert ModelConfig(modalities=DIMS, classes=CLASSES, fusion="serial-film").architecture == (
        "serial-film"
    )


def test_config_round_trips_through_json() -> None:
    config = ModelConfig(
        modalities=DIMS,
        classes=CLASSES,
        encoders={"image": {"name": "cnn-image", "seed": 1}},
        fusion_cfg={"dim": 32},
        modality_dropout=0.25,
    )
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"modalities": {"image": 0}}, "modalities.image"),
        ({"modalities": {"image": 8}, "modality_dropout": 1.5}, "modality_dropout"),
        ({"modalities": {"image": 8}, "encoders": {"image": "cnn-image"}}, "encoders.image"),
        ({"modalities": {"image": 8}, "fusoin": "concat"}, "fusoin"),
        ({"modalities": {"image": 8}, "classes": "abc"}, "classes"),
    ],
)
def test_bad_config_names_the_key(fields: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        ModelConfig.from_dict(fields)


def test_unknown_fusion_or_head_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        model_of(fusion="fancy")
    with pytest.raises(ConfigError, match="head"):
        model_of(head="oracle")


def test_presence_columns_follow_the_batch_order() -> None:
    model = model_of(fusion="concat")
    feats = features(3)
    present = torch.tensor([[True, False], [True, True], [False, True]])  # (audio, image)
    direct = model(feats, present).logits
    swapped = CachedBatch(feats, present[:, [1, 0]], ("image", "audio"), None, ["x", "y", "z"])
    via_batch = model(*model.inputs_of(swapped)).logits
    torch.testing.assert_close(direct, via_batch, rtol=0, atol=0)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = model_of(fusion="gated", head_cfg={"hidden": 8, "norm": True})
    present = torch.tensor([[True, True], [False, True], [True, False]])
    expected = model(features(3), present).logits
    save_model(model, tmp_path / "m", metrics={"test": {"accuracy": 0.5, "nan": float("nan")}})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(features(3), present).logits, expected, rtol=0, atol=0)
    assert read_metrics(tmp_path / "m") == {"test": {"accuracy": 0.5, "nan": None}}


def test_regression_head_scale_is_saved(tmp_path: Path) -> None:
    model = model_of(task="regression", head="regression", classes=[])
    model.head.calibrate(torch.tensor([10.0, 20.0, 30.0]))
    expected = model(features(2), torch.ones(2, 2, dtype=torch.bool)).logits
    assert expected.shape == (2, 1)
    save_model(model, tmp_path / "r")
    loaded = load_model(tmp_path / "r")
    assert loaded.head.mean.item() == 20.0
    torch.testing.assert_close(
        loaded(features(2), torch.ones(2, 2, dtype=torch.bool)).logits, expected
    )


def _saved(tmp_path: Path) -> Path:
    save_model(model_of(fusion="concat"), tmp_path / "m")
    return tmp_path / "m"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"omnifuse-model"', '"other"'), "format"),
        (lambda text: text.replace('"concat"', "42"), "fusion"),
        (
            lambda text: text.replace('"modality_dropout": 0.0', '"modality_dropout": "x"'),
            "modality_dropout",
        ),
        (lambda text: text.replace('"task":', '"tsak":'), "tsak"),
        (lambda text: text.replace('"image": 20', '"image": 21'), "weights do not fit"),
    ],
)
def test_malformed_model_folder_raises_a_typed_error(
    tmp_path: Path, edit: Callable[[str], str], message: str
) -> None:
    folder = _saved(tmp_path)
    path = folder / "config.json"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(InvalidModelError, match=message) as caught:
        load_model(folder)
    assert isinstance(caught.value, ConfigError)


def test_missing_or_damaged_weights_raise_a_typed_error(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InvalidModelError, match="unreadable"):
        load_model(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InvalidModelError, match=r"no model\.safetensors"):
        load_model(folder)
    with pytest.raises(InvalidModelError, match="not a model folder"):
        load_model(tmp_path / "nothing")


def _digit_image(path: Path, value: int) -> Path:
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)
    return path


def test_end_to_end_model_saves_its_trained_encoders(tmp_path: Path) -> None:
    encoders = {"image": {"name": "cnn-image", "image_size": 16, "channels": [8], "dim": 16}}
    config = ModelConfig(
        modalities={"image": 16}, encoders=encoders, classes=CLASSES, end_to_end=True
    )
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():  # pretend training moved the encoder away from its seeded start
        for p in model.encoders["image"].parameters():
            p.add_(0.01)
    model.eval()
    images = [str(_digit_image(tmp_path / f"{i}.png", 40 * i)) for i in range(3)]
    expected = model.predict_raw([{"image": p} for p in images]).logits
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    got = loaded.predict_raw([{"image": p} for p in images]).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_cached_feature_model_rebuilds_its_seeded_encoders(tmp_path: Path) -> None:
    spec = {"name": "cnn-image", "image_size": 16, "channels": [8], "dim": 16, "seed": 5}
    config = ModelConfig(
        modalities={"audio": 64, "image": 16},
        encoders={"image": spec, "audio": {"name": "logmel-cnn", "dim": 64}},
        classes=CLASSES,
    )
    model = build_model(config).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    image = str(_digit_image(tmp_path / "x.png", 200))
    wave = (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)
    samples = [{"image": image}, {"audio": (wave, 16000)}, {"image": image, "audio": (wave, 16000)}]
    first = model.predict_raw(samples)
    second = loaded.predict_raw(samples)
    torch.testing.assert_close(first.logits, second.logits, rtol=0, atol=0)
    # an absent modality is a learned "missing" embedding: audio alone ≠ image and audio
    assert not torch.allclose(first.logits[1], first.logits[2])
    assert not any(k.startswith("encoders.") for k in _keys(tmp_path / "m"))


def _keys(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return list(f.keys())


def test_predict_raw_reports_bad_input_by_type(tmp_path: Path) -> None:
    from omnifuse.errors import InputNotFoundError

    spec = {"name": "cnn-image", "image_size": 16, "channels": [8], "dim": 16}
    model = build_model(
        ModelConfig(modalities={"image": 16}, encoders={"image": spec}, classes=CLASSES)
    )
    with pytest.raises(InputNotFoundError):
        model.predict_raw([{"image": str(tmp_path / "missing.png")}])
