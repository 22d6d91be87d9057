"""``world-sensors``: reproducible; each sensor holds its part of the event and no more; conditions
in their fractions; the radar a clean series (no NaN, known shape and rate); disjoint splits."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile as sf

from omnifuse.data.builders import build, datasets
from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import SPLITS, DatasetInfo, schema_path_for
from omnifuse.data.world.radar import CHANNELS, FIELDS, SHAPE_RCS_DBSM, kinematics, sample_times
from omnifuse.data.world.scene import COLOURS
from omnifuse.data.world.sensors import (
    CONDITIONS,
    SOUND_STREAM,
    apportion,
    assign_splits,
    build_world_sensors,
    camera_frames,
)
from omnifuse.data.world.video import Clip, Mover, event_schedule, sample_clip, soundtrack
from omnifuse.errors import ConfigError
from omnifuse.io import load_series
from omnifuse.sweep import SweepConfig, run_sweep

SIZE = 40
SIZE_PX = 48
OPTIONS: dict[str, Any] = {"size": SIZE, "image_size": SIZE_PX}
SHAPE_HZ = {"circle": 440.0, "square": 220.0, "triangle": 330.0, "star": 660.0}
STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three builds: seed 0 twice and seed 1 once."""
    dirs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path_factory.mktemp(f"sensors-{name}")
        build_world_sensors(out, seed=seed, **OPTIONS)
        dirs[name] = out
    return dirs


@pytest.fixture(scope="module")
def data(built: dict[str, Path]) -> Path:
    return built["a"]


def read_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "sensors.jsonl").read_text().splitlines()]


def files(out: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob(pattern))}


def decode_frames(path: Path) -> tuple[np.ndarray, int]:
    """The frames and the number of audio streams of an MP4."""
    with av.open(str(path)) as container:
        audio_streams = len(container.streams.audio)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return frames, audio_streams


def radar(out: Path, row: dict[str, Any]) -> np.ndarray:
    with np.load(out / row["radar"], allow_pickle=False) as npz:
        return np.asarray(npz["values"])


def slot_of(row: dict[str, Any], role: str) -> str:
    return next(slot for slot, r in row["radar_slots"].items() if r == role)


def field(values: np.ndarray, slot: str, name: str) -> np.ndarray:
    return values[:, CHANNELS.index(f"{slot}.{name}")]


# ----------------------------------------------------------------------------- reproducibility


def test_registered_and_built_by_name(tmp_path: Path) -> None:
    assert datasets.get("world-sensors") is build_world_sensors
    info = build("world-sensors", tmp_path, seed=3, size=3, image_size=32)
    assert info.name == "world-sensors" and len(read_rows(tmp_path)) == 3


def test_same_seed_gives_identical_files(built: dict[str, Path]) -> None:
    for pattern in ("*.json", "*.jsonl", "radar/*.npz", "sound/*.wav"):
        fa, fb = files(built["a"], pattern), files(built["b"], pattern)
        assert fa and fa == fb, pattern


def test_same_seed_gives_the_same_camera_frames(built: dict[str, Path]) -> None:
    """MP4 bytes may depend on the encoder's scheduling; the decoded frames may not."""
    for row in read_rows(built["a"])[:8]:
        fa, _ = decode_frames(built["a"] / row["camera"])
        fb, _ = decode_frames(built["b"] / row["camera"])
        assert np.abs(fa.astype(int) - fb.astype(int)).max() <= 2


def test_different_seed_gives_different_data(built: dict[str, Path]) -> None:
    assert files(built["a"], "*.jsonl") != files(built["c"], "*.jsonl")
    assert files(built["a"], "radar/*.npz") != files(built["c"], "radar/*.npz")


def test_manifest_loads_with_its_schema_and_dataset_json(data: Path) -> None:
    schema = json.loads(schema_path_for(data / "sensors.jsonl").read_text())
    assert schema["modalities"] == {"camera": "video", "radar": "series", "sound": "audio"}
    assert schema["labels"] == ["event"]
    manifest = load_manifest(data / "sensors.jsonl")
    assert len(manifest.samples) == SIZE
    info = DatasetInfo.read(data)
    assert info.manifests == {"sensors": "sensors.jsonl"}
    assert info.params["radar"]["channels"] == list(CHANNELS)
    assert info.params["radar"]["rate"] == 20.0
    for row in read_rows(data):
        for column in ("camera", "radar", "sound"):
            assert (data / row[column]).is_file()
        assert row["event"] == f"{row['shape']}-moves-{row['direction']}"


# ----------------------------------------------------------------------------- radar


def test_radar_npz_holds_float32_values_and_a_float64_rate(data: Path) -> None:
    steps = len(sample_times(2.0, 20.0))
    for row in read_rows(data):
        with np.load(data / row["radar"], allow_pickle=False) as npz:
            assert sorted(npz.files) == ["rate", "values"]
            values, rate = npz["values"], npz["rate"]
            assert values.dtype == np.float32 and values.shape == (steps, len(CHANNELS)) == (40, 18)
            assert rate.dtype == np.float64 and rate.shape == () and float(rate) == 20.0
            assert np.isfinite(values).all()
        series = load_series(data / row["radar"])
        assert series.rate == 20.0 and series.values.shape == (40, 18)


def test_undetected_steps_are_all_zero_and_flags_are_binary(data: Path) -> None:
    dropped = 0
    for row in read_rows(data):
        values = radar(data, row)
        for slot in ("a", "b", "clutter"):
            flag = field(values, slot, "detected")
            assert set(np.unique(flag)) <= {0.0, 1.0}
            block = values[:, [CHANNELS.index(f"{slot}.{f}") for f in FIELDS]]
            assert (block[flag == 0] == 0).all()
            dropped += int((flag == 0).sum())
    assert dropped > 0


def test_tracks_follow_their_objects(data: Path) -> None:
    """Range and bearing of each detected step match the object's true place within the noise;
    radial speed is negative while an object comes down towards the sensor, cross speed positive
    while it moves right."""
    for row in read_rows(data):
        clip = clip_of(row)
        values = radar(data, row)
        times = sample_times(2.0, 20.0)
        for role, mover in (("sounding", clip.sounding), ("distractor", clip.distractor)):
            if row["radar_missed"] == role:
                continue
            slot = slot_of(row, role)
            seen = field(values, slot, "detected") == 1
            true = kinematics(clip, mover, times)
            assert np.abs(field(values, slot, "range_m")[seen] - true[seen, 0]).max() < 1.0
            assert np.abs(field(values, slot, "bearing_deg")[seen] - true[seen, 1]).max() < 6.0
            moving = seen & (times >= clip.start_s + 0.05) & (times < clip.end_s - 0.05)
            radial = field(values, slot, "radial_mps")[moving]
            if mover.direction == "down" and moving.any():
                assert radial.mean() < -1.0
            if mover.direction == "up" and moving.any():
                assert radial.mean() > 1.0
            cross = field(values, slot, "cross_mps")[moving]
            if mover.direction == "right" and moving.any():
                assert cross.mean() > 1.0
            if mover.direction == "left" and moving.any():
                assert cross.mean() < -1.0


def test_radial_and_cross_speeds_are_the_rates_of_range_and_bearing() -> None:
    clip = sample_clip(np.random.default_rng(4), "square", "left", 2.0)
    t = np.array([(clip.start_s + clip.end_s) / 2])
    for mover in (clip.sounding, clip.distractor):
        before, now, after = (kinematics(clip, mover, t + dt)[0] for dt in (-1e-4, 0.0, 1e-4))
        range_rate = (after[0] - before[0]) / 2e-4
        bearing_rate = math.radians(after[1] - before[1]) / 2e-4
        assert now[2] == pytest.approx(range_rate, abs=1e-3)
        assert now[3] == pytest.approx(now[0] * bearing_rate, abs=1e-3)


def clip_of(row: dict[str, Any]) -> Clip:
    """The clip a row describes, rebuilt from its recorded paths and timing."""

    def mover(d: dict[str, Any]) -> Mover:
        (x0, y0), (x1, y1) = d["start"], d["end"]
        return Mover(d["shape"], d["colour"], d["direction"], x0, y0, x1, y1)

    return Clip(
        mover(row["sounding"]),
        mover(row["distractor"]),
        row["sound_start_s"],
        row["sound_end_s"],
        2.0,
        (236, 236, 236),
    )


def test_cross_section_tells_the_shapes_apart(data: Path) -> None:
    """The mean cross-section of a track is its shape's, within 2 dB: the radar's shape hint."""
    means: dict[str, list[float]] = {s: [] for s in SHAPE_RCS_DBSM}
    for row in read_rows(data):
        values = radar(data, row)
        for role in ("sounding", "distractor"):
            if row["radar_missed"] == role:
                continue
            slot = slot_of(row, role)
            seen = field(values, slot, "detected") == 1
            means[row[role]["shape"]].append(float(field(values, slot, "rcs_dbsm")[seen].mean()))
    for shape, found in means.items():
        assert found, shape
        assert abs(np.mean(found) - SHAPE_RCS_DBSM[shape]) < 2.0, shape
    ordered = sorted(SHAPE_RCS_DBSM, key=SHAPE_RCS_DBSM.__getitem__)
    assert [np.mean(means[s]) for s in ordered] == sorted(np.mean(means[s]) for s in ordered)


def test_slot_order_does_not_reveal_the_sounding_object(data: Path) -> None:
    order = Counter(row["radar_slots"]["a"] for row in read_rows(data))
    assert order["sounding"] >= SIZE // 4 and order["distractor"] >= SIZE // 4


def test_radar_miss_never_detects_one_object_and_clutter_appears(data: Path) -> None:
    missed_roles = set()
    clutter = 0.0
    for row in read_rows(data):
        values = radar(data, row)
        clutter += float(field(values, "clutter", "detected").mean())
        if row["condition"] != "radar-miss":
            assert row["radar_missed"] is None
            continue
        missed_roles.add(row["radar_missed"])
        missed = slot_of(row, row["radar_missed"])
        other = next(s for s in ("a", "b") if s != missed)
        assert (field(values, missed, "detected") == 0).all()
        assert field(values, other, "detected").mean() > 0.5
    assert missed_roles  # at least one radar-miss clip in a build of 40
    assert 0.15 < clutter / SIZE < 0.45


# ----------------------------------------------------------------------------- camera


def centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    distance = np.abs(frame.astype(np.int32) - np.array(COLOURS[colour])).sum(axis=-1)
    ys, xs = np.nonzero(distance < 60)
    assert len(xs) > 5, colour
    return np.array([xs.mean(), ys.mean()]) / frame.shape[1]


def test_camera_has_no_sound_and_shows_both_movers(data: Path) -> None:
    for row in read_rows(data):
        frames, audio_streams = decode_frames(data / row["camera"])
        assert audio_streams == 0
        assert frames.shape == (16, SIZE_PX, SIZE_PX, 3)
        if row["condition"] == "dark-camera":
            continue
        for role in ("sounding", "distractor"):
            mover = row[role]
            moved = centroid(frames[-1], mover["colour"]) - centroid(frames[0], mover["colour"])
            assert np.abs(moved - np.array(STEPS[mover["direction"]]) * 0.36).max() < 0.08


def test_dark_camera_frames_are_near_black(data: Path) -> None:
    rows = read_rows(data)
    dark = [r for r in rows if r["condition"] == "dark-camera"]
    assert dark
    for row in dark:
        frames, _ = decode_frames(data / row["camera"])
        assert frames.mean() < 12 and np.percentile(frames, 99) < 30
    clear = next(r for r in rows if r["condition"] == "clear")
    assert decode_frames(data / clear["camera"])[0].mean() > 150


def test_camera_cannot_tell_which_object_sounds() -> None:
    """Swapping the sounding and the silent object gives the very same frames."""
    clip = sample_clip(np.random.default_rng(5), "star", "left", 2.0)
    swapped = dataclasses.replace(clip, sounding=clip.distractor, distractor=clip.sounding)
    assert np.array_equal(camera_frames(clip, 48, 8, 0.4), camera_frames(swapped, 48, 8, 0.4))


def test_streak_trails_behind_each_mover() -> None:
    """The pixels a trail adds lie behind the object, opposite to its motion."""
    clip = sample_clip(np.random.default_rng(9), "circle", "right", 2.0)
    index = round((clip.start_s + clip.end_s) / 2 * 8)  # a frame mid-motion
    plain = camera_frames(clip, 96, 8, 0.0)[index].astype(int)
    streaked = camera_frames(clip, 96, 8, 0.6)[index].astype(int)
    changed = np.abs(streaked - plain).sum(axis=-1) > 20
    assert changed.sum() > 20
    for mover in (clip.sounding, clip.distractor):
        x, y = mover.position(clip.progress(index / 8))
        ys, xs = np.nonzero(changed)
        near = np.hypot(xs / 96 - x, ys / 96 - y) < 0.3
        offset = np.array([xs[near].mean() / 96 - x, ys[near].mean() / 96 - y])
        dx, dy = STEPS[mover.direction]
        assert offset @ np.array([dx, dy]) < -0.02, (mover, offset)


# ----------------------------------------------------------------------------- sound


def test_sound_is_the_sounding_shapes_tone(data: Path) -> None:
    for row in read_rows(data):
        audio, rate = sf.read(data / row["sound"], dtype="float32")
        assert rate == 16_000 and audio.ndim == 1
        start, end = row["sound_start_s"], row["sound_end_s"]
        during = audio[int((start + 0.1) * rate) : int((end - 0.1) * rate)]
        spectrum = np.abs(np.fft.rfft(during * np.hanning(len(during))))
        peak = float(np.argmax(spectrum) * rate / len(during))
        assert peak == pytest.approx(SHAPE_HZ[row["shape"]], rel=0.03)


def test_noisy_sound_is_at_the_requested_snr(data: Path) -> None:
    """The clean soundtrack, rebuilt from the row and the seed, against what the file holds: the
    noise (what the clean sound at its best-fitting gain does not explain) is at the SNR asked."""
    noisy = [r for r in read_rows(data) if r["condition"] == "noisy-sound"]
    assert noisy
    for row in noisy:
        heard, _ = sf.read(data / row["sound"], dtype="float64")
        k = int(row["id"].removeprefix("clip-"))
        clean = soundtrack(clip_of(row), 16_000, 8, np.random.default_rng([0, SOUND_STREAM, k]))
        gain = float(heard @ clean / (clean @ clean))
        noise = heard - gain * clean
        snr = 10 * math.log10(np.mean((gain * clean) ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(row["sound_snr_db"], abs=0.5)
        assert row["sound_snr_db"] == -10.0 and np.abs(heard).max() < 1.0


def test_sound_does_not_depend_on_where_the_object_goes() -> None:
    """Two clips that differ only in directions sound the same, sample for sample."""
    clip = sample_clip(np.random.default_rng(2), "square", "up", 2.0)
    moved = dataclasses.replace(
        clip,
        sounding=dataclasses.replace(clip.sounding, direction="down", y1=clip.sounding.y0 + 0.36),
    )
    a = soundtrack(clip, 16_000, 8, np.random.default_rng(1))
    b = soundtrack(moved, 16_000, 8, np.random.default_rng(1))
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- splits, conditions


def test_splits_are_disjoint_and_seventy_ten_twenty(data: Path) -> None:
    rows = read_rows(data)
    by_split = {s: {r["id"] for r in rows if r["split"] == s} for s in SPLITS}
    assert sum(len(ids) for ids in by_split.values()) == len({r["id"] for r in rows}) == SIZE
    assert {s: len(ids) for s, ids in by_split.items()} == {"train": 28, "val": 4, "test": 8}


def test_splits_are_stratified_by_event() -> None:
    """Every event is in training from two clips each, and the test split is balanced."""
    events = [f"{s}-moves-{d}" for s, d in event_schedule(1000, np.random.default_rng(0))]
    splits = assign_splits(events, np.random.default_rng(1))
    assert Counter(splits) == {"train": 700, "val": 100, "test": 200}
    test = Counter(e for e, s in zip(events, splits, strict=True) if s == "test")
    assert len(test) == 16 and max(test.values()) - min(test.values()) <= 1
    small = [f"{s}-moves-{d}" for s, d in event_schedule(32, np.random.default_rng(0))]
    small_splits = assign_splits(small, np.random.default_rng(1))
    train = {e for e, s in zip(small, small_splits, strict=True) if s == "train"}
    assert len(train) == 16


def test_conditions_take_their_fraction_of_every_split(data: Path) -> None:
    rows = read_rows(data)
    for split in SPLITS:
        found = Counter(r["condition"] for r in rows if r["split"] == split)
        n = sum(found.values())
        shares = {"clear": 0.4, "dark-camera": 0.2, "radar-miss": 0.2, "noisy-sound": 0.2}
        assert {k: v for k, v in found.items() if v} == {
            k: v for k, v in apportion(n, shares).items() if v
        }
    train = Counter(r["condition"] for r in rows if r["split"] == "train")
    assert train == {"clear": 11, "dark-camera": 6, "noisy-sound": 6, "radar-miss": 5}


def test_fractions_are_options(tmp_path: Path) -> None:
    build_world_sensors(
        tmp_path, size=20, image_size=32, dark_camera=0.5, radar_miss=0.0, noisy_sound=0.0
    )
    found = Counter(r["condition"] for r in read_rows(tmp_path))
    assert found == {"clear": 10, "dark-camera": 10}


def test_apportion_keeps_the_total() -> None:
    assert apportion(7, {"clear": 0.4, "x": 0.3, "y": 0.3}) == {"clear": 3, "x": 2, "y": 2}
    assert sum(apportion(9, {"a": 0.7, "b": 0.1, "c": 0.2}).values()) == 9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 0}, "size"),
        ({"image_size": 47}, "image_size"),
        ({"fps": 0}, "fps"),
        ({"seconds": 0}, "seconds"),
        ({"radar_rate": 1.0}, "radar_rate"),
        ({"dark_camera": -0.1}, "dark_camera"),
        ({"dark_camera": 0.5, "radar_miss": 0.4, "noisy_sound": 0.2}, "add up to"),
        ({"noisy_snr_db": float("nan")}, "noisy_snr_db"),
        ({"trail_s": -1}, "trail_s"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_world_sensors(tmp_path, **options)


# ----------------------------------------------------------------------------- sweep


def test_sweeps_by_name_with_condition_groups_and_without_columns(tmp_path: Path) -> None:
    """The built-in name builds, encodes (video, series, audio encoders of the sweep's entry)
    and reports accuracy per condition and without each modality."""
    config = SweepConfig(
        data="world-sensors",
        size=48,
        builder_options={"image_size": 32},
        encoders={"camera": {"num_frames": 2}},
        fusions=["concat"],
        singles=[],
        dropout_study=[],
        epochs=1,
        out=tmp_path / "sweep",
        plots=False,
        progress=False,
        workers=1,
    )
    assert config.group_column == "condition"
    result = run_sweep(config)
    (concat,) = result.results
    assert set(concat.modalities) == {"camera", "radar", "sound"}
    assert set(concat.groups) <= set(CONDITIONS) and concat.groups
    board = (tmp_path / "sweep" / "leaderboard.md").read_text()
    assert "without radar" in board and "@ " in board
