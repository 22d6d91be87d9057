"""Modality dropout, augmentation of raw inputs, and the learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.errors import ConfigError
from omnifuse.speech.noise import measured_snr_db
from omnifuse.train import AugmentConfig, Augmenter, drop_modalities
from omnifuse.train.augment import time_shift
from omnifuse.train.schedule import warmup_cosine


def test_modality_dropout_keeps_at_least_one_present_modality() -> None:
    torch.manual_seed(0)
    present = torch.rand(20000, 3) < 0.7
    dropped = drop_modalities(present, 0.5)
    assert not (dropped & ~present).any()  # never invents a modality
    had_some = present.any(dim=1)
    assert dropped[had_some].any(dim=1).all()  # never removes the last one
    assert not dropped[~had_some].any()
    rate = 1 - dropped[present].float().mean().item()
    assert 0.35 < rate < 0.5  # p = 0.5, less the modalities kept back as the last one


def test_modality_dropout_keeps_a_uniformly_chosen_survivor() -> None:
    torch.manual_seed(1)
    present = torch.ones(30000, 3, dtype=torch.bool)
    dropped = drop_modalities(present, 0.99)
    assert (dropped.sum(dim=1) >= 1).all()
    alone = dropped[dropped.sum(dim=1) == 1].float().mean(dim=0)
    torch.testing.assert_close(alone, torch.full((3,), 1 / 3), atol=0.02, rtol=0)


def test_zero_modality_dropout_is_the_identity() -> None:
    present = torch.tensor([[True, False], [True, True]])
    assert drop_modalities(present, 0.0) is present


def test_image_crop_and_flip() -> None:
    image = Image.fromarray(
        np.arange(100 * 80 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8)
    )
    augment = Augmenter(AugmentConfig(image_crop=0.5, image_flip=1.0))
    out = augment("image", image, np.random.default_rng(0))
    assert 50 <= out.width <= 100 and 40 <= out.height <= 80
    assert out.width / out.height == pytest.approx(100 / 80, abs=0.05)
    again = augment("image", image, np.random.default_rng(0))
    assert np.array_equal(np.asarray(out), np.asarray(again))
    flip_only = Augmenter(AugmentConfig(image_flip=1.0))("image", image, np.random.default_rng(0))
    assert np.array_equal(np.asarray(flip_only), np.asarray(image)[:, ::-1])


def test_audio_noise_at_the_drawn_snr_and_time_shift() -> None:
    wave = (0.3 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    augment = Augmenter(AugmentConfig(audio_snr_db=(10.0, 10.0)))
    noisy, rate = augment("audio", (wave, 16000), np.random.default_rng(0))
    assert rate == 16000 and noisy.shape == wave.shape
    assert measured_snr_db(wave, noisy) == pytest.approx(10.0, abs=0.3)
    shifted = time_shift(np.arange(1, 6, dtype=np.float32), 2)
    assert shifted.tolist() == [0, 0, 1, 2, 3]
    assert time_shift(np.arange(1, 6, dtype=np.float32), -2).tolist() == [3, 4, 5, 0, 0]
    shift = Augmenter(AugmentConfig(audio_shift_s=0.25))
    moved, _ = shift("audio", (wave, 16000), np.random.default_rng(3))
    assert moved.shape == wave.shape and not np.array_equal(moved, wave)


def test_text_word_dropout_keeps_a_word() -> None:
    augment = Augmenter(AugmentConfig(text_word_dropout=0.5))
    text = "the small red circle left of the big blue square"
    out = augment("text", text, np.random.default_rng(0))
    words = out.split()
    assert 1 <= len(words) < len(text.split())
    assert all(w in text.split() for w in words)
    nearly_all = Augmenter(AugmentConfig(text_word_dropout=0.999))
    assert len(nearly_all("text", text, np.random.default_rng(1)).split()) == 1


def test_kinds_without_augmentation_pass_through_undecoded() -> None:
    augment = Augmenter(AugmentConfig(image_crop=0.8))
    assert augment("audio", "clip.wav", np.random.default_rng(0)) == "clip.wav"
    assert augment("video", "clip.mp4", np.random.default_rng(0)) == "clip.mp4"


def test_bad_augment_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"augment\.image_crop"):
        AugmentConfig.from_dict({"image_crop": 0.0})
    with pytest.raises(ConfigError, match=r"augment\.audio_snr_db"):
        AugmentConfig.from_dict({"audio_snr_db": 10})
    with pytest.raises(ConfigError, match=r"augment\.crop"):
        AugmentConfig.from_dict({"crop": 0.5})


def test_warmup_then_cosine_to_zero() -> None:
    total, warmup = 100, 10
    factors = [warmup_cosine(step, total, warmup) for step in range(total)]
    assert factors[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert factors[9] == 1.0 and factors[10] == 1.0
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert warmup_cosine(total, total, warmup) == pytest.approx(0.0)
