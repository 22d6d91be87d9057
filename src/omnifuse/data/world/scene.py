"""The scene model of the ``world`` dataset: one to four coloured shapes on a plain background.

Coordinates are fractions of the image side, ``x`` to the right and ``y`` downwards, so a scene
renders at any resolution. Sampling keeps every pair of objects apart by a clear margin on both
axes, which makes every spatial relation ("left of", "above", ...) between two objects true or
false beyond doubt. Within a scene each (colour, shape) pair occurs at most once, so "the red
circle" always names exactly one object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (150, 60, 190),
    "cyan": (40, 195, 205),
}
SIZES: dict[str, float] = {"small": 0.085, "large": 0.13}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
MAX_OBJECTS = 4

EDGE_MARGIN = 0.03
OBJECT_GAP = 0.04
AXIS_GAP = 0.12
REUSE_PROBABILITY = 0.4


@dataclass(frozen=True)
class SceneObject:
    """One shape: what it is, how it looks, and where its centre lies (fractions of the side)."""

    shape: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    @property
    def name(self) -> str:
        """``"red circle"``: unique within its scene."""
        return f"{self.colour} {self.shape}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "x": self.x,
            "y": self.y,
        }


@dataclass(frozen=True)
class Scene:
    """The objects of one image and the background tint they are drawn on."""

    objects: tuple[SceneObject, ...]
    background: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [obj.to_dict() for obj in self.objects],
            "background": list(self.background),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        objects = tuple(SceneObject(**obj) for obj in data["objects"])
        r, g, b = (int(v) for v in data["background"])
        return cls(objects=objects, background=(r, g, b))


def holds(relation: str, a: SceneObject, b: SceneObject) -> bool:
    """Whether ``a`` is ``relation`` ``b`` in the image (``y`` grows downwards)."""
    if relation == "left of":
        return a.x < b.x
    if relation == "right of":
        return a.x > b.x
    if relation == "above":
        return a.y < b.y
    if relation == "below":
        return a.y > b.y
    raise ValueError(f"unknown relation {relation!r}; use one of {RELATIONS}")


def sample_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """Draw a scene; ``n_objects`` defaults to a uniform draw from 1 to :data:`MAX_OBJECTS`.

    Colours and shapes already in the scene are reused with some probability, so that counting
    questions ("how many red shapes?") have answers above one often enough.
    """
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"a scene holds 1 to {MAX_OBJECTS} objects, not {n}")
    tint = rng.integers(-12, 13, size=3)
    background = (int(236 + tint[0]), int(236 + tint[1]), int(236 + tint[2]))
    while True:
        objects = _place_objects(rng, _sample_kinds(rng, n))
        if objects is not None:
            return Scene(objects=tuple(objects), background=background)


def _sample_kinds(rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """(shape, colour, size) for ``n`` objects with distinct (colour, shape) pairs."""
    kinds: list[tuple[str, str, str]] = []
    colours = list(COLOURS)
    while len(kinds) < n:
        used_shapes = [k[0] for k in kinds]
        used_colours = [k[1] for k in kinds]
        reuse_shape = bool(used_shapes) and rng.random() < REUSE_PROBABILITY
        reuse_colour = bool(used_colours) and rng.random() < REUSE_PROBABILITY
        shape = str(rng.choice(used_shapes if reuse_shape else list(SHAPES)))
        colour = str(rng.choice(used_colours if reuse_colour else colours))
        size = str(rng.choice(list(SIZES)))
        if all((shape, colour) != (k[0], k[1]) for k in kinds):
            kinds.append((shape, colour, size))
    return kinds


def _place_objects(
    rng: np.random.Generator, kinds: list[tuple[str, str, str]], tries: int = 200
) -> list[SceneObject] | None:
    """Positions with no overlap and a clear gap on both axes; ``None`` when the draw got stuck."""
    placed: list[SceneObject] = []
    for shape, colour, size in kinds:
        radius = SIZES[size]
        low, high = radius + EDGE_MARGIN, 1.0 - radius - EDGE_MARGIN
        for _ in range(tries):
            x, y = (round(float(v), 4) for v in rng.uniform(low, high, size=2))
            candidate = SceneObject(shape, colour, size, x, y)
            if all(_apart(candidate, other) for other in placed):
                placed.append(candidate)
                break
        else:
            return None
    return placed


def _apart(a: SceneObject, b: SceneObject) -> bool:
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    far = float(np.hypot(dx, dy)) >= a.radius + b.radius + OBJECT_GAP
    return far and dx >= AXIS_GAP and dy >= AXIS_GAP
