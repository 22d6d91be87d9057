"""A radar beside the camera of a ``world`` clip: one track per moving object, plus clutter.

The sensor sits at the bottom centre of the image plane and looks up it, so image ``y`` is depth
(the image side is :data:`SCENE_METRES`). Each step (``rate`` per second) it reports, per slot,
``detected`` (1 or 0), ``range_m``, ``bearing_deg`` (0 straight ahead, positive to the right),
``radial_mps`` (the Doppler range rate, positive when the object moves away), ``cross_mps`` (the
tracker's estimate of the speed across the line of sight, positive to the right; noisier than
Doppler) and ``rcs_dbsm``, the radar cross-section: a property of the object's *shape*
(:data:`SHAPE_RCS_DBSM`) with per-detection fluctuation. That cross-section is the radar's only
hint of what an object is; it knows nothing of colour or sound.

Measurements carry Gaussian noise; a detection drops out now and then (``detected`` 0 and every
value 0, never NaN: the flag says what is missing). The two object tracks fill slots ``a`` and
``b`` in a random order per clip, so a slot's index does not say which object it follows; a third
slot holds clutter, spurious detections at random places that form no track. With ``miss`` set,
that object is never detected (the ``radar-miss`` condition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omnifuse.data.world.video import Clip, Mover

SCENE_METRES = 20.0
SENSOR_XY = (0.5, 1.0)
FIELDS: tuple[str, ...] = (
    "detected",
    "range_m",
    "bearing_deg",
    "radial_mps",
    "cross_mps",
    "rcs_dbsm",
)
SLOTS: tuple[str, ...] = ("a", "b", "clutter")
CHANNELS: tuple[str, ...] = tuple(f"{slot}.{f}" for slot in SLOTS for f in FIELDS)
SHAPE_RCS_DBSM: dict[str, float] = {"triangle": -6.0, "circle": 0.0, "star": 6.0, "square": 12.0}
"""Mean cross-section of each shape, 6 dB apart: flat faces (the square) reflect most."""


@dataclass(frozen=True)
class RadarNoise:
    """Measurement noise (standard deviations), the chance that a detection drops out, and the
    chance per step of one clutter detection."""

    range_m: float = 0.15
    bearing_deg: float = 1.0
    radial_mps: float = 0.15
    cross_mps: float = 0.3
    rcs_db: float = 3.0
    dropout: float = 0.1
    clutter: float = 0.3


def sample_times(seconds: float, rate: float) -> np.ndarray:
    """The radar's sample times over a clip of ``seconds``: ``0, 1/rate, ...``."""
    return np.arange(max(1, round(seconds * rate)), dtype=np.float64) / rate


def kinematics(clip: Clip, mover: Mover, times: np.ndarray) -> np.ndarray:
    """True ``(range_m, bearing_deg, radial_mps, cross_mps)`` of ``mover`` at ``times``:
    ``(T, 4)``."""
    motion = clip.end_s - clip.start_s
    rows = []
    for t in times:
        x, y = mover.position(clip.progress(float(t)))
        moving = clip.start_s <= t < clip.end_s
        vx = (mover.x1 - mover.x0) / motion if moving else 0.0
        vy = (mover.y1 - mover.y0) / motion if moving else 0.0
        dx, dy = (x - SENSOR_XY[0]) * SCENE_METRES, (SENSOR_XY[1] - y) * SCENE_METRES
        distance = math.hypot(dx, dy)
        # The velocity along the line of sight and across it, to the right (image y points
        # towards the sensor, so the forward speed is -vy).
        radial = (dx * vx - dy * vy) * SCENE_METRES / max(distance, 1e-6)
        cross = (dy * vx + dx * vy) * SCENE_METRES / max(distance, 1e-6)
        rows.append((distance, math.degrees(math.atan2(dx, dy)), radial, cross))
    return np.asarray(rows, dtype=np.float64)


def track(
    clip: Clip,
    mover: Mover,
    times: np.ndarray,
    noise: RadarNoise,
    rng: np.random.Generator,
    *,
    missed: bool = False,
) -> np.ndarray:
    """The measured track of ``mover``: ``(T, len(FIELDS))``, zeros where not detected."""
    true = kinematics(clip, mover, times)
    steps = len(times)
    spread = (noise.range_m, noise.bearing_deg, noise.radial_mps, noise.cross_mps)
    measured = true + rng.normal(size=(steps, 4)) * spread
    rcs = SHAPE_RCS_DBSM[mover.shape] + rng.normal(0.0, noise.rcs_db, size=steps)
    detected = rng.random(steps) >= noise.dropout
    if missed:
        detected[:] = False
    values = np.column_stack([np.ones(steps), measured, rcs])
    return np.where(detected[:, None], values, 0.0)


def clutter(times: np.ndarray, noise: RadarNoise, rng: np.random.Generator) -> np.ndarray:
    """Spurious detections, each at an independent random place: ``(T, len(FIELDS))``."""
    steps = len(times)
    values = np.column_stack(
        [
            np.ones(steps),
            rng.uniform(1.0, SCENE_METRES * 1.2, size=steps),
            rng.uniform(-60.0, 60.0, size=steps),
            rng.normal(0.0, 1.0, size=steps),
            rng.normal(0.0, 1.0, size=steps),
            rng.uniform(-10.0, 15.0, size=steps),
        ]
    )
    present = rng.random(steps) < noise.clutter
    return np.where(present[:, None], values, 0.0)


def radar_series(
    clip: Clip,
    times: np.ndarray,
    noise: RadarNoise,
    rng: np.random.Generator,
    *,
    miss: str | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """The radar of ``clip``: float32 ``(T, len(CHANNELS))`` and which object each track slot
    follows (``{"a": "sounding", "b": "distractor"}`` or the other way round). ``miss`` names
    the object (``"sounding"`` or ``"distractor"``) the radar never detects."""
    if miss not in (None, "sounding", "distractor"):
        raise ValueError(f"miss must be 'sounding', 'distractor' or None, not {miss!r}")
    movers = {"sounding": clip.sounding, "distractor": clip.distractor}
    order = ["sounding", "distractor"] if rng.random() < 0.5 else ["distractor", "sounding"]
    tracks = [track(clip, movers[r], times, noise, rng, missed=r == miss) for r in order]
    values = np.concatenate([*tracks, clutter(times, noise, rng)], axis=1)
    return values.astype(np.float32), dict(zip(SLOTS[:2], order, strict=True))
