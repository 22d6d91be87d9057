"""Noise functions: deterministic for a seed, and worse as the level grows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from omnifuse.errors import ConfigError
from omnifuse.eval.noise import (
    NOISES,
    drop_words,
    gaussian_noise,
    get_noise,
    jitter,
    missing_fields,
    noises_for,
    occlude,
    occlusion_side,
    sample_rng,
    stale_steps,
    typos,
    white_noise,
)
from omnifuse.speech.noise import measured_snr_db

TEXT = (
    "the quick brown fox jumps over the lazy dog while a small red square sits left of "
    "a large blue circle and the green triangle hides behind them all in the morning light"
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_gaussian_noise_is_seeded_and_has_the_requested_std() -> None:
    gray = np.full((64, 64, 3), 128, np.uint8)
    a, b = gaussian_noise(gray, 20.0, rng(1)), gaussian_noise(gray, 20.0, rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, gaussian_noise(gray, 20.0, rng(2)))
    noisy = [gaussian_noise(gray, s, rng()).astype(float) for s in (0, 8, 16, 32)]
    stds = [float((image - 128).std()) for image in noisy]
    assert stds[0] == 0.0
    assert stds[1:] == pytest.approx([8, 16, 32], rel=0.05)
    with pytest.raises(ConfigError):
        gaussian_noise(gray, -1.0, rng())


def test_occlusion_zeroes_a_square_that_grows_with_the_level() -> None:
    white = np.full((40, 50), 255, np.uint8)
    zeroed = [int((occlude(white, f, rng(3)) == 0).sum()) for f in (0.0, 0.2, 0.4, 0.6, 1.0)]
    assert zeroed == [0, 8 * 8, 16 * 16, 24 * 24, 40 * 40]
    assert occlusion_side(40, 50, 0.2) == 8
    color = np.full((10, 10, 3), 200, np.uint8)
    out = occlude(color, 0.5, rng(0))
    assert ((out == 0).all(axis=2)).sum() == 25 and np.array_equal(out, occlude(color, 0.5, rng(0)))


def test_white_noise_reaches_the_requested_snr() -> None:
    t = np.arange(32_000) / 16_000
    wave = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert np.array_equal(white_noise(wave, math.inf, rng()), wave)
    for snr in (20.0, 10.0, 5.0, 0.0):
        noisy = white_noise(wave, snr, rng(4))
        assert measured_snr_db(wave, noisy) == pytest.approx(snr, abs=0.2)
        assert np.array_equal(noisy, white_noise(wave, snr, rng(4)))


def test_typos_change_more_letters_at_higher_rates() -> None:
    assert typos(TEXT, 0.0, rng()) == TEXT
    assert typos(TEXT, 0.2, rng(5)) == typos(TEXT, 0.2, rng(5))
    changed = []
    for rate in (0.05, 0.1, 0.2, 0.4):
        out = typos(TEXT, rate, rng(6))
        assert len(out) == len(TEXT)
        changed.append(sum(a != b for a, b in zip(out, TEXT, strict=True)))
    assert changed == sorted(changed) and changed[0] > 0
    assert all(c.isascii() for c in typos(TEXT, 1.0, rng()))


def test_drop_words_keeps_fewer_words_at_higher_rates() -> None:
    assert drop_words(TEXT, 0.0, rng()) == TEXT
    counts = [len(drop_words(TEXT, r, rng(7)).split()) for r in (0.0, 0.2, 0.4, 0.6, 0.9)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert len(drop_words(TEXT, 1.0, rng()).split()) == 1
    assert set(drop_words(TEXT, 0.5, rng(8)).split()) <= set(TEXT.split())


def test_noise_table_and_apply_on_raw_inputs(tmp_path: object) -> None:
    assert {n.kind for n in NOISES.values()} == {"image", "audio", "text", "series", "tabular"}
    assert [n.name for n in noises_for("image")] == ["gaussian", "occlusion"]
    with pytest.raises(ConfigError):
        get_noise("rain")
    image = Image.fromarray(np.full((16, 16, 3), 255, np.uint8))
    out = get_noise("occlusion").apply(image, 0.5, rng())
    assert isinstance(out, Image.Image) and (np.asarray(out) == 0).all(axis=2).sum() == 64
    wave = np.full(1600, 0.1, np.float32)
    noisy, rate = get_noise("white-noise").apply((wave, 16_000), 10.0, rng())
    assert rate == 16_000 and measured_snr_db(wave, noisy) == pytest.approx(10.0, abs=0.5)
    assert get_noise("drop-words").apply("a b c", 0.0, rng()) == "a b c"
    # every default curve starts clean
    for noise in NOISES.values():
        assert noise.levels[0] in (0.0, math.inf)


def test_series_and_table_damage_grows_with_the_level() -> None:
    track = np.cumsum(rng(1).normal(size=(400, 2)), axis=0).astype(np.float32)
    assert np.array_equal(jitter(track, 0.0, rng()), track)
    errors = [float(np.abs(jitter(track, s, rng()) - track).mean()) for s in (0.25, 1.0)]
    assert 0 < errors[0] < errors[1]
    held = [
        int((np.diff(stale_steps(track, r, rng()), axis=0) == 0).all(axis=1).sum())
        for r in (0.1, 0.5)
    ]
    assert 0 < held[0] < held[1]
    record = {f"f{i}": i for i in range(200)}
    missing = [
        sum(v is None for v in missing_fields(record, r, rng()).values()) for r in (0.1, 0.5)
    ]
    assert 0 < missing[0] < missing[1] < 200
    out = get_noise("jitter").apply({"values": track.tolist(), "rate": 10.0}, 0.5, rng())
    assert out.rate == 10.0 and out.values.shape == track.shape
    assert get_noise("missing-fields").apply({"a": 1}, 0.0, rng()) == {"a": 1}


def test_sample_generators_depend_on_seed_noise_level_and_sample_only() -> None:
    draw = [sample_rng(0, "gaussian", 16.0, "s1").random() for _ in range(2)]
    assert draw[0] == draw[1]
    others = [
        sample_rng(1, "gaussian", 16.0, "s1"),
        sample_rng(0, "occlusion", 16.0, "s1"),
        sample_rng(0, "gaussian", 32.0, "s1"),
        sample_rng(0, "gaussian", 16.0, "s2"),
    ]
    assert all(g.random() != draw[0] for g in others)
