"""Drawing ``world`` scenes with PIL: supersampled shapes on a tinted, lightly noisy background.

Shapes are drawn at :data:`SUPERSAMPLE` times the target size and box-filtered down, which gives
smooth edges while the interior of every shape keeps its exact palette colour (plus the same faint
pixel noise as the background, so no two images are trivially identical).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from omnifuse.data.world.scene import COLOURS, Scene

SUPERSAMPLE = 4
PIXEL_NOISE_STD = 2.5
SQUARE_HALF_SIDE = 0.85
STAR_INNER_RATIO = 0.45


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape centred on ``(cx, cy)`` with outer radius ``r`` (pixels).

    The centre lies inside every shape, and for the triangle it is the centroid, so "the pixel at
    the object's centre" always has the object's colour.
    """
    if shape == "square":
        h = r * SQUARE_HALF_SIDE
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return _regular_points(cx, cy, [r] * 3)
    if shape == "star":
        return _regular_points(cx, cy, [r, r * STAR_INNER_RATIO] * 5)
    raise ValueError(f"{shape!r} is not a polygon")


def _regular_points(cx: float, cy: float, radii: list[float]) -> list[tuple[float, float]]:
    """Points at equal angles starting straight up, at the given distances from the centre."""
    step = 2.0 * math.pi / len(radii)
    return [
        (cx + rad * math.sin(i * step), cy - rad * math.cos(i * step))
        for i, rad in enumerate(radii)
    ]


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    colour: tuple[int, int, int],
    cx: float,
    cy: float,
    r: float,
) -> None:
    """Draw one filled shape in pixel coordinates."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon(shape_polygon(shape, cx, cy, r), fill=colour)


def draw_objects(
    size: int,
    background: tuple[int, int, int],
    objects: list[tuple[str, str, float, float, float]],
) -> Image.Image:
    """Draw ``(shape, colour, x, y, radius)`` objects (fractions of the side), ``size`` pixels."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    for shape, colour, x, y, radius in objects:
        draw_shape(draw, shape, COLOURS[colour], x * big, y * big, radius * big)
    return canvas.resize((size, size), Image.Resampling.BOX)


def add_pixel_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Faint Gaussian noise on every pixel, so that images differ beyond their content."""
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, PIXEL_NOISE_STD, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def render_scene(scene: Scene, size: int, rng: np.random.Generator) -> Image.Image:
    """The image of ``scene``, ``size`` pixels square."""
    objects = [(o.shape, o.colour, o.x, o.y, o.radius) for o in scene.objects]
    return add_pixel_noise(draw_objects(size, scene.background, objects), rng)
