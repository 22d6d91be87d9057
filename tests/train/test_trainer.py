"""The trainer on cached features and raw inputs: learning, resumption, early stopping,
modality dropout, bf16, logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Subset

from omnifuse.data.cache import CachedFeatureDataset
from omnifuse.models import ModelConfig, RawDataset, build_model, evaluate
from omnifuse.models.fusion_model import FusionModel
from omnifuse.train import AugmentConfig, Augmenter, TrainConfig, TrainingError, train
from omnifuse.train.log import read_metrics_log

Sets = dict[str, CachedFeatureDataset]
CLASSES = [str(d) for d in range(10)]


def cached_model(sets: Sets, seed: int = 0, **fields: Any) -> FusionModel:
    torch.manual_seed(seed)
    dims = sets["train"].dims
    return build_model(
        ModelConfig.from_dict(
            {"modalities": dims, "classes": CLASSES, "fusion_cfg": {"dim": 64}, **fields}
        )
    )


def settings(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "epochs": 25,
        "batch_size": 16,
        "lr": 3e-3,
        "patience": None,
        "progress": False,
        "device": "cpu",
    }
    return TrainConfig(**{**base, **changes})


def without_times(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_learns_digits_from_cached_features(digit_sets: Sets, tmp_path: Path) -> None:
    model = cached_model(digit_sets)
    result = train(model, digit_sets["train"], digit_sets["val"], settings(log_dir=str(tmp_path)))
    history = result.history
    assert result.metric == "accuracy" and len(history) == 25
    assert result.best_metric >= 0.3  # chance is 0.1 on ten digits
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert read_metrics_log(tmp_path) == history
    assert history[0]["lr"] > history[-1]["lr"]  # cosine decay


def test_resume_gives_the_same_result_as_an_uninterrupted_run(
    digit_sets: Sets, tmp_path: Path
) -> None:
    fields = {"modality_dropout": 0.3}
    steady = cached_model(digit_sets, **fields)
    full = train(steady, digit_sets["train"], digit_sets["val"], settings(epochs=4))

    ckpt = str(tmp_path / "ckpt")
    first = cached_model(digit_sets, **fields)
    part = train(
        first,
        digit_sets["train"],
        digit_sets["val"],
        settings(epochs=4, checkpoint_dir=ckpt, stop_after_epochs=2),
    )
    assert not part.completed and len(part.history) == 2
    assert sorted(p.name for p in (tmp_path / "ckpt" / "epoch-0002").iterdir()) == [
        "best.safetensors",
        "state.json",
        "state.safetensors",
    ]
    restarted = cached_model(digit_sets, seed=123, **fields)  # a new process, new random init
    rest = train(
        restarted,
        digit_sets["train"],
        digit_sets["val"],
        settings(epochs=4, checkpoint_dir=ckpt, resume=True),
    )
    assert rest.completed
    assert without_times(rest.history) == without_times(full.history)
    for (name, a), (_, b) in zip(
        steady.state_dict().items(), restarted.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_resume_refuses_changed_settings(digit_sets: Sets, tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    train(
        cached_model(digit_sets),
        digit_sets["train"],
        None,
        settings(epochs=3, checkpoint_dir=ckpt, stop_after_epochs=1),
    )
    with pytest.raises(TrainingError, match="lr"):
        train(
            cached_model(digit_sets),
            digit_sets["train"],
            None,
            settings(epochs=3, checkpoint_dir=ckpt, resume=True, lr=1e-2),
        )


def test_early_stopping_restores_the_best_weights(digit_sets: Sets) -> None:
    model = cached_model(digit_sets)
    # only a drop of the validation loss by 10 counts: nothing after epoch 1 improves on it
    config = settings(epochs=20, patience=2, metric="loss", min_delta=10.0)
    result = train(model, digit_sets["train"], digit_sets["val"], config)
    assert result.stopped_early
    assert result.best_epoch == 1 and len(result.history) == 3
    assert result.history[-1]["val_loss"] != result.history[0]["val_loss"]
    assert evaluate(model, digit_sets["val"])["loss"] == pytest.approx(
        result.history[0]["val_loss"], abs=1e-6
    )


def test_bf16_autocast_trains(digit_sets: Sets) -> None:
    result = train(
        cached_model(digit_sets), digit_sets["train"], None, settings(epochs=3, bf16=True)
    )
    assert result.metric == "train_loss"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_regression_head_learns_the_target_scale(digit_sets: Sets) -> None:
    model = cached_model(digit_sets, task="regression", head="regression", classes=[])
    result = train(model, digit_sets["train"], digit_sets["val"], settings(epochs=5))
    names = {row[0] for row in digit_sets["train"].rows}
    values = [float(s["label"]) for s in digit_sets["train"].manifest.samples if s["id"] in names]
    assert model.head.mean.item() == pytest.approx(sum(values) / len(values), rel=1e-5)
    assert result.metric == "r2"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_checkpoints_hold_no_pickles(digit_sets: Sets, tmp_path: Path) -> None:
    train(
        cached_model(digit_sets),
        digit_sets["train"],
        None,
        settings(epochs=1, checkpoint_dir=str(tmp_path)),
    )
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["best.safetensors", "latest.json", "state.json", "state.safetensors"]
    state = json.loads((tmp_path / "epoch-0001" / "state.json").read_text())
    assert state["state"]["epoch"] == 1 and state["state"]["step"] == 7


def test_end_to_end_training_with_trainable_encoders_reduces_loss(digits: Path) -> None:
    encoders = {
        "image": {"name": "cnn-image", "image_size": 16, "channels": [16], "dim": 32},
        "audio": {"name": "logmel-cnn", "dim": 32, "n_mels": 32},
    }
    config = ModelConfig(
        modalities={"image": 32, "audio": 32},
        encoders=encoders,
        classes=CLASSES,
        fusion_cfg={"dim": 32},
        end_to_end=True,
        modality_dropout=0.2,
    )
    torch.manual_seed(0)
    model = build_model(config)
    augment = Augmenter(
        AugmentConfig(image_crop=0.85, audio_snr_db=(10.0, 30.0), audio_shift_s=0.05)
    )
    data = RawDataset.from_manifest(digits, model, split="train", augment=augment)
    before = {k: v.clone() for k, v in model.encoders.state_dict().items()}
    result = train(model, Subset(data, range(48)), None, settings(epochs=4, batch_size=16))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    changed = [k for k, v in model.encoders.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("image.") for k in changed)
    assert any(k.startswith("audio.") for k in changed)


def test_fine_tuning_the_last_blocks_of_a_pretrained_encoder(digits: Path) -> None:
    spec = {"name": "effnet-lite0", "image_size": 32, "finetune": "last"}
    config = ModelConfig(
        modalities={"image": 1280},
        encoders={"image": spec},
        classes=CLASSES,
        fusion_cfg={"dim": 32},
        end_to_end=True,
    )
    torch.manual_seed(0)
    model = build_model(config)
    net = model.encoders["image"].net
    stem = net._conv_stem.weight.clone()
    last = net._blocks[-1]._project_conv.weight.clone()
    data = RawDataset.from_manifest(digits, model, split="train")
    train(
        model,
        Subset(data, range(16)),
        None,
        settings(epochs=1, batch_size=8, encoder_lr=1e-4, warmup_ratio=0.0),
    )
    assert torch.equal(net._conv_stem.weight, stem)  # frozen part: untouched
    assert not torch.equal(net._blocks[-1]._project_conv.weight, last)  # last blocks: learned
    assert net._bn0.training is False  # frozen BatchNorm keeps its statistics
