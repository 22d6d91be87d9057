"""Build ``world-sensors``: a camera, a radar and a microphone watch the same ``world`` clips.

Each clip is a :mod:`world video <omnifuse.data.world.video>` clip: two shapes move in different
directions and one of them, the *sounding* object, plays its shape's tone. The label is that
object's event, ``"<shape>-moves-<direction>"``, and each sensor sees only part of it:

- **camera** (MP4 with no sound stream): both movers, each with a fading streak behind it
  (a slow sensor's persistence, ``trail_s``), so a single frame shows which way it goes; it
  cannot tell which object sounds;
- **radar** (``.npz``, :mod:`~omnifuse.data.world.radar`): a track per object (range, bearing,
  radial speed, a shape-dependent cross-section) in a random slot order, plus clutter; it cannot
  tell which object sounds either;
- **sound** (16 kHz mono WAV): the sounding shape's tone, which names the shape but not where it
  went. (Its loudness does not follow the object's distance: a rising or falling level would tell
  up from down through the sound alone.)

Camera + sound solve the event (the shape heard, its streak seen), and so do radar + sound (the
shape heard, its cross-section matched to a track, that track's motion). Degraded *conditions*,
each in a set fraction of every split and recorded per clip in ``condition``: ``dark-camera``
(near-black, noisy frames), ``radar-miss`` (one object, the sounding one or not, never detected),
``noisy-sound`` (white noise at ``noisy_snr_db`` over the clip), else ``clear``.

Layout under ``out``: ``dataset.json``, ``sensors.jsonl`` + ``sensors.schema.json``, ``camera/``,
``radar/``, ``sound/``. Every random draw comes from a generator seeded by (seed, stream, clip),
so one seed and one set of options give byte-identical manifests, ``.npz`` and WAV files (MP4
bytes may vary with the encoder's scheduling; their decoded frames do not).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.builders import datasets
from omnifuse.data.schema import SPLITS, DatasetInfo, ManifestSchema, write_manifest
from omnifuse.data.world.radar import (
    CHANNELS,
    FIELDS,
    SCENE_METRES,
    SHAPE_RCS_DBSM,
    SLOTS,
    RadarNoise,
    radar_series,
    sample_times,
)
from omnifuse.data.world.render import draw_objects
from omnifuse.data.world.video import (
    EVENTS,
    RADIUS,
    SHAPE_SOUNDS,
    Clip,
    event_schedule,
    frame_count,
    sample_clip,
    soundtrack,
    video_codec,
    write_mp4,
)
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.speech.tts import SAMPLE_RATE, write_wav

CLIP_STREAM, EVENT_STREAM, SPLIT_STREAM, CONDITION_STREAM = 21, 22, 23, 24
CAMERA_STREAM, RADAR_STREAM, SOUND_STREAM = 25, 26, 27
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
CONDITIONS: tuple[str, ...] = ("clear", "dark-camera", "radar-miss", "noisy-sound")
DARK_GAIN = 0.02
DARK_NOISE_STD = 3.0
GHOSTS = 6
GHOST_OPACITY = 0.8
MAX_PEAK = 0.95

SCHEMA = ManifestSchema(
    modalities={"camera": "video", "radar": "series", "sound": "audio"},
    labels=["event"],
    extra=[
        "condition",
        "shape",
        "direction",
        "colour",
        "sounding",
        "distractor",
        "radar_slots",
        "radar_missed",
        "sound_snr_db",
        "sound_start_s",
        "sound_end_s",
    ],
)


def camera_frames(clip: Clip, size: int, fps: int, trail_s: float) -> np.ndarray:
    """The frames of ``clip`` (uint8 ``[N, size, size, 3]``): each mover drawn where it is, over
    :data:`GHOSTS` fainter copies of where it was during the last ``trail_s`` seconds."""
    background = np.asarray(draw_objects(size, clip.background, []), dtype=np.float32)
    frames = []
    for i in range(frame_count(clip.duration_s, fps)):
        t = i / fps
        image: np.ndarray = background.copy()
        if trail_s > 0:
            for j in range(GHOSTS, 0, -1):  # oldest first, each fainter than the next
                ghost = _draw_at(clip, size, t - trail_s * j / GHOSTS)
                opacity = GHOST_OPACITY * (1.0 - j / (GHOSTS + 1))
                image = (1.0 - opacity) * image + opacity * ghost
        now = _draw_at(clip, size, t)
        covered = np.any(now != background, axis=-1, keepdims=True)
        frames.append(np.where(covered, now, image))
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def _draw_at(clip: Clip, size: int, t: float) -> np.ndarray:
    progress = clip.progress(t)
    objects = []
    for mover in (clip.distractor, clip.sounding):
        x, y = mover.position(progress)
        objects.append((mover.shape, mover.colour, x, y, RADIUS))
    return np.asarray(draw_objects(size, clip.background, objects), dtype=np.float32)


def darken(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The frames a camera takes at night: :data:`DARK_GAIN` of the light plus sensor noise."""
    dark = frames.astype(np.float32) * DARK_GAIN + rng.normal(0.0, DARK_NOISE_STD, frames.shape)
    return np.clip(np.rint(dark), 0, 255).astype(np.uint8)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus white noise at ``snr_db`` (powers over the whole clip), scaled down as a
    whole where it would clip, so that the ratio stays what was asked for."""
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noisy = audio + rng.normal(0.0, math.sqrt(power / 10.0 ** (snr_db / 10.0)), audio.shape)
    peak = float(np.max(np.abs(noisy)))
    return (noisy * (MAX_PEAK / peak if peak > MAX_PEAK else 1.0)).astype(np.float32)


def apportion(count: int, fractions: dict[str, float]) -> dict[str, int]:
    """Whole numbers of items per key, proportional to ``fractions`` (largest remainders; the
    key ``clear`` takes what the others leave)."""
    exact = {k: count * f for k, f in fractions.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    spare = count - sum(counts.values())
    for key in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: max(0, spare)]:
        counts[key] += 1
    return counts


def assign_splits(events: list[str], rng: np.random.Generator) -> list[str]:
    """A split per clip, 70/10/20 (test is the largest held-out part because it is read per
    condition), stratified by event: the clips of each event, in a seeded order, take the splits
    in turn as evenly as the totals allow, so every event with a few clips is in every split.
    Val and test are non-empty from three clips."""
    count = len(events)
    sizes = apportion(count, SPLIT_FRACTIONS)
    if count >= 3:
        for split in ("val", "test"):
            if sizes[split] == 0:
                sizes[split], sizes["train"] = 1, sizes["train"] - 1
    order = sorted(range(count), key=lambda i: (events[i], float(rng.random())))
    given = dict.fromkeys(SPLITS, 0)
    result = [""] * count
    for j, i in enumerate(order):  # the split furthest behind its share so far goes next
        split = max(SPLITS, key=lambda s: (sizes[s] * (j + 1) / count - given[s], sizes[s]))
        given[split] += 1
        result[i] = split
    return result


def assign_conditions(
    splits: list[str], fractions: dict[str, float], rng: np.random.Generator
) -> list[str]:
    """A condition per clip: within every split, each degraded condition in its fraction
    (rounded), the rest ``clear``, in a seeded order."""
    result = ["clear"] * len(splits)
    shares = {"clear": 1.0 - sum(fractions.values()), **fractions}
    for split in SPLITS:
        members = [i for i, s in enumerate(splits) if s == split]
        counts = apportion(len(members), shares)
        labels = [c for c in CONDITIONS for _ in range(counts.get(c, 0))]
        for i, label in zip(rng.permutation(members).tolist(), labels, strict=True):
            result[i] = label
    return result


def _check_options(options: dict[str, Any]) -> dict[str, float]:
    """Every option in range; returns the degraded conditions' fractions."""
    if options["size"] < 1:
        raise ConfigError(f"world-sensors: size must be at least 1 clip, not {options['size']}")
    if not 0 < options["seconds"] <= 30:
        raise ConfigError(f"world-sensors: seconds must be in (0, 30], not {options['seconds']}")
    if options["fps"] < 1:
        raise ConfigError(f"world-sensors: fps must be at least 1, not {options['fps']}")
    size = options["image_size"]
    if size < 32 or size % 2:
        raise ConfigError(f"world-sensors: image_size must be an even number ≥ 32, not {size}")
    if not options["radar_rate"] > 0 or options["seconds"] * options["radar_rate"] < 4:
        raise ConfigError(
            "world-sensors: radar_rate must be positive and give at least 4 samples per clip "
            f"(seconds × radar_rate = {options['seconds'] * options['radar_rate']:g})"
        )
    if not 0 <= options["trail_s"] <= options["seconds"]:
        raise ConfigError(
            f"world-sensors: trail_s must be in [0, seconds], not {options['trail_s']}"
        )
    if not math.isfinite(options["noisy_snr_db"]):
        raise ConfigError("world-sensors: noisy_snr_db must be a finite number of dB")
    fractions = {c: float(options[c.replace("-", "_")]) for c in CONDITIONS[1:]}
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"world-sensors: {name.replace('-', '_')} must be in [0, 1], not {value}"
            )
    if sum(fractions.values()) > 1.0 + 1e-9:
        raise ConfigError(
            "world-sensors: the fractions of dark_camera, radar_miss and noisy_sound add up to "
            f"{sum(fractions.values()):g}, more than 1"
        )
    return fractions


@datasets.register("world-sensors")
def build_world_sensors(
    out: Path,
    *,
    seed: int = 0,
    size: int = 1000,
    seconds: float = 2.0,
    fps: int = 8,
    image_size: int = 96,
    radar_rate: float = 20.0,
    trail_s: float = 0.8,
    dark_camera: float = 0.2,
    radar_miss: float = 0.2,
    noisy_sound: float = 0.2,
    noisy_snr_db: float = -10.0,
) -> DatasetInfo:
    """Camera + radar + sound of ``size`` world clips; the label needs them together.

    Clips last ``seconds``; the camera films ``image_size`` pixels square at ``fps`` with a
    ``trail_s`` streak behind movers; the radar reports ``radar_rate`` times a second; sound is
    16 kHz mono. ``dark_camera``, ``radar_miss`` and ``noisy_sound`` are the fractions of every
    split in those conditions (the rest ``clear``); noisy sound is at ``noisy_snr_db``.
    """
    out = Path(out)
    options: dict[str, Any] = {
        "size": size,
        "seconds": seconds,
        "fps": fps,
        "image_size": image_size,
        "radar_rate": radar_rate,
        "trail_s": trail_s,
        "dark_camera": dark_camera,
        "radar_miss": radar_miss,
        "noisy_sound": noisy_sound,
        "noisy_snr_db": noisy_snr_db,
    }
    fractions = _check_options(options)
    rows = _write_clips(out, seed, options, fractions)
    write_manifest(out / "sensors.jsonl", rows, SCHEMA)
    noise = RadarNoise()
    info = DatasetInfo(
        name="world-sensors",
        seed=seed,
        size=size,
        manifests={"sensors": "sensors.jsonl"},
        description=(build_world_sensors.__doc__ or "").strip(),
        params={
            **options,
            "events": list(EVENTS),
            "conditions": list(CONDITIONS),
            "splits": {s: SPLIT_FRACTIONS[s] for s in SPLITS},
            "shape_sounds": {s: {"wave": w, "hz": f} for s, (w, f) in SHAPE_SOUNDS.items()},
            "sound_rate": SAMPLE_RATE,
            "video_codec": video_codec(),
            "radar": {
                "channels": list(CHANNELS),
                "slots": list(SLOTS),
                "fields": list(FIELDS),
                "rate": radar_rate,
                "scene_metres": SCENE_METRES,
                "sensor": "bottom centre of the image, looking up it (image y is depth)",
                "shape_rcs_dbsm": dict(SHAPE_RCS_DBSM),
                "noise": {k: getattr(noise, k) for k in noise.__dataclass_fields__},
            },
        },
    )
    info.write(out)
    return info


def _write_clips(
    out: Path, seed: int, options: dict[str, Any], fractions: dict[str, float]
) -> list[dict[str, Any]]:
    """Make every clip's three recordings; returns the manifest rows."""
    count, fps, seconds = options["size"], options["fps"], options["seconds"]
    schedule = event_schedule(count, np.random.default_rng([seed, EVENT_STREAM]))
    events = [f"{shape}-moves-{direction}" for shape, direction in schedule]
    splits = assign_splits(events, np.random.default_rng([seed, SPLIT_STREAM]))
    conditions = assign_conditions(
        splits, fractions, np.random.default_rng([seed, CONDITION_STREAM])
    )
    times = sample_times(seconds, options["radar_rate"])
    noise = RadarNoise()
    for folder in ("camera", "radar", "sound"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for k in track(range(count), "world-sensors: clips", count):
        shape, direction = schedule[k]
        clip = sample_clip(np.random.default_rng([seed, CLIP_STREAM, k]), shape, direction, seconds)
        condition = conditions[k]
        clip_id = f"clip-{k:05d}"

        camera_rng = np.random.default_rng([seed, CAMERA_STREAM, k])
        frames = camera_frames(clip, options["image_size"], fps, options["trail_s"])
        if condition == "dark-camera":
            frames = darken(frames, camera_rng)
        write_mp4(out / "camera" / f"{clip_id}.mp4", frames, fps, lossless=True)

        radar_rng = np.random.default_rng([seed, RADAR_STREAM, k])
        missed = None
        if condition == "radar-miss":
            missed = "sounding" if radar_rng.random() < 0.5 else "distractor"
        values, slots = radar_series(clip, times, noise, radar_rng, miss=missed)
        rate = np.float64(options["radar_rate"])
        np.savez(out / "radar" / f"{clip_id}.npz", values=values, rate=rate)

        sound_rng = np.random.default_rng([seed, SOUND_STREAM, k])
        audio = soundtrack(clip, SAMPLE_RATE, fps, sound_rng)
        snr = options["noisy_snr_db"] if condition == "noisy-sound" else None
        if snr is not None:
            audio = add_noise(audio, snr, sound_rng)
        write_wav(out / "sound" / f"{clip_id}.wav", audio)

        rows.append(
            {
                "id": clip_id,
                "split": splits[k],
                "camera": f"camera/{clip_id}.mp4",
                "radar": f"radar/{clip_id}.npz",
                "sound": f"sound/{clip_id}.wav",
                "event": clip.event,
                "condition": condition,
                "shape": clip.sounding.shape,
                "direction": clip.sounding.direction,
                "colour": clip.sounding.colour,
                "sounding": clip.sounding.to_dict(),
                "distractor": clip.distractor.to_dict(),
                "radar_slots": slots,
                "radar_missed": missed,
                "sound_snr_db": snr,
                "sound_start_s": clip.start_s,
                "sound_end_s": clip.end_s,
            }
        )
    return rows
