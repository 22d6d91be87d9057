"""Named dominant colours of an image and where they are, as words a language model can use.

An ImageNet classifier says nothing about colour, and a language model asked "what colour is
the cat?" guesses. This module names the colours an image holds in everyday words (red, orange,
yellow, green, cyan, blue, purple, pink, brown, black, white, grey), says where each lies (left,
top right, centre, ...) and how much of the picture it covers, leaving out the background.

Every pixel takes the name of its nearest prototype colour in CIELAB, where distances follow
perceived difference better than in RGB. The background is the colour that dominates the
border, and only its part connected to the border is set aside, so a white object on a white
background is still counted where it is enclosed by another colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from omnifuse.errors import ConfigError, InvalidValueError

PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((220, 40, 40), (255, 0, 0), (170, 20, 30), (130, 15, 20)),
    "orange": ((255, 140, 0), (240, 120, 40), (255, 165, 80), (205, 90, 45), (225, 110, 70)),
    "yellow": ((255, 220, 0), (235, 205, 30), (245, 235, 120), (210, 190, 50)),
    "green": ((40, 170, 60), (0, 128, 0), (120, 200, 80), (60, 100, 40), (150, 190, 110)),
    "cyan": ((40, 195, 205), (0, 255, 255), (110, 215, 225), (0, 150, 160)),
    "blue": ((40, 80, 220), (0, 0, 255), (30, 50, 140), (90, 140, 235), (20, 30, 90)),
    "purple": ((150, 60, 190), (128, 0, 128), (90, 40, 120), (180, 120, 220)),
    "pink": ((255, 150, 190), (230, 90, 150), (250, 190, 200), (200, 100, 130)),
    "brown": ((140, 90, 40), (100, 60, 30), (170, 120, 70), (120, 80, 60), (190, 150, 110)),
    "black": ((0, 0, 0), (35, 35, 35)),
    "white": ((255, 255, 255), (236, 236, 236)),
    "grey": ((128, 128, 128), (175, 175, 175), (90, 90, 90), (210, 210, 210)),
}
"""sRGB examples of each colour name; a pixel is named after the nearest one in CIELAB."""

NAMES: tuple[str, ...] = tuple(PROTOTYPES)
MAX_SIDE = 128
"""Images are analysed at most this many pixels on a side: colour needs no fine detail."""
BORDER = 0.06
"""Width of the border ring, as a fraction of the side, whose majority colour is the background."""
MIN_BACKGROUND = 0.5
"""The border is plain, and its colour the background, when this share of it is close to its
median colour."""
BACKGROUND_DELTA_E = 10.0
"""CIELAB distance from the border's median colour within which a pixel counts as background."""


def _prototype_lab() -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import rgb2lab

    rgb = [c for name in NAMES for c in PROTOTYPES[name]]
    owners = [i for i, name in enumerate(NAMES) for _ in PROTOTYPES[name]]
    lab = rgb2lab(np.asarray(rgb, dtype=np.float64)[None] / 255.0)[0]  # (P, 3)
    return lab, np.asarray(owners)


_LAB, _OWNERS = _prototype_lab()


def name_pixels(rgb: np.ndarray) -> np.ndarray:
    """The index into :data:`NAMES` of every pixel of an (H, W, 3) uint8 image."""
    return _name_lab(_to_lab(rgb))


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return np.asarray(rgb2lab(rgb.astype(np.float64) / 255.0))


def _name_lab(lab: np.ndarray) -> np.ndarray:
    dist = ((lab[..., None, :] - _LAB) ** 2).sum(axis=-1)  # (..., P)
    return np.asarray(_OWNERS[dist.argmin(axis=-1)])


@dataclass(frozen=True)
class ColourRegion:
    """One named colour: the share of the image it covers and where it lies, in words."""

    name: str
    share: float
    where: str

    def to_prompt(self) -> str:
        special = {"all over": "all over", "centre": "in the centre"}
        place = special.get(self.where, f"at the {self.where}")
        return f"{self.name} {place} ({round(100 * self.share)}%)"


@dataclass(frozen=True)
class ColourAnalysis:
    """The dominant colours of an image, most covering first, and its background colour."""

    colours: list[ColourRegion] = field(default_factory=list)
    background: str | None = None

    def to_prompt(self) -> str:
        """``blue at the left (14%), red at the top right (6%); background white``."""
        parts = [", ".join(c.to_prompt() for c in self.colours)] if self.colours else []
        if self.background:
            parts.append(f"background {self.background}")
        return "; ".join(parts) or "no clear colours"


def describe_position(x: float, y: float) -> str:
    """Words for a point given as fractions of the width and height (``y`` downwards)."""
    column = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    return " ".join(p for p in (row, column) if p) or "centre"


def _where(mask: np.ndarray, min_part: float) -> str:
    """Where the pixels of ``mask`` lie: the positions of its larger connected parts, or
    ``all over`` when they are scattered across the image."""
    height, width = mask.shape
    parts, count = ndimage.label(mask, structure=np.ones((3, 3)))
    total = mask.sum()
    sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
    big = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= min_part * total]
    ys, xs = np.nonzero(mask)
    spread = xs.std() / width > 0.22 and ys.std() / height > 0.22
    if not big or (spread and sizes[big[0] - 1] < 0.5 * total):
        return "all over" if spread else describe_position(xs.mean() / width, ys.mean() / height)
    places: list[str] = []
    for label in big[:2]:
        py, px = np.nonzero(parts == label)
        place = describe_position((px.mean() + 0.5) / width, (py.mean() + 0.5) / height)
        if not any(set(place.split()) & set(other.split()) for other in places):
            places.append(place)
    return " and the ".join(places)


def analyse_colours(
    image: Image.Image | np.ndarray | Any,
    *,
    max_colours: int = 4,
    min_share: float = 0.05,
    min_image_share: float = 0.002,
) -> ColourAnalysis:
    """The dominant named colours of ``image`` and where they are, background set aside.

    A colour is listed when it covers at least ``min_share`` of the foreground (the image less
    its background) and ``min_image_share`` of the whole image; shares are of the whole image.
    """
    if max_colours < 1 or not 0 < min_share <= 1 or not 0 <= min_image_share <= 1:
        raise ConfigError("need max_colours ≥ 1, 0 < min_share ≤ 1, 0 ≤ min_image_share ≤ 1")
    lab = _to_lab(_as_rgb(image))
    names = _name_lab(lab)
    background, foreground = _split_background(lab)
    # Blends at the edges of shapes (pink between red and white) are no colour of their own:
    # colours are ranked and placed by the pixels whose 3×3 neighbourhood shares their name.
    interior = foreground & (
        ndimage.minimum_filter(names, size=3) == ndimage.maximum_filter(names, size=3)
    )
    total, fg_total = names.size, max(int(interior.sum()), 1)
    counts = np.bincount(names[interior], minlength=len(NAMES))
    found: list[ColourRegion] = []
    for index in np.argsort(-counts, kind="stable")[:max_colours]:
        count = int(counts[index])
        if count == 0 or count < min_share * fg_total or count < min_image_share * total:
            break
        share = float((foreground & (names == index)).sum()) / total
        where = _where(interior & (names == index), min_part=0.2)
        found.append(ColourRegion(NAMES[index], share, where))
    return ColourAnalysis(found, None if background is None else NAMES[background])


def _as_rgb(image: Image.Image | np.ndarray | Any) -> np.ndarray:
    """An (H, W, 3) uint8 array at most :data:`MAX_SIDE` pixels on a side."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            raise InvalidValueError(
                f"expected an (H, W, 3) uint8 image array, got {image.shape} {image.dtype}"
            )
        image = Image.fromarray(image[..., :3])
    if not isinstance(image, Image.Image):
        raise InvalidValueError(f"expected a PIL image or an array, got {type(image).__name__}")
    picture = image.convert("RGB")
    if min(picture.size) < 1:
        raise InvalidValueError("the image is empty")
    scale = MAX_SIDE / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BOX)
    return np.asarray(picture)


def _split_background(lab: np.ndarray) -> tuple[int | None, np.ndarray]:
    """The background colour (or None) and the foreground mask.

    The background is plain: most of the border lies within :data:`BACKGROUND_DELTA_E` of the
    border's median colour. Pixels that close to it and connected to the border are set aside;
    a photo whose subject runs off the edge has no plain border and keeps every pixel.
    """
    height, width = lab.shape[:2]
    band = max(1, round(BORDER * min(height, width)))
    ring = np.zeros((height, width), dtype=bool)
    ring[:band], ring[-band:], ring[:, :band], ring[:, -band:] = True, True, True, True
    median = np.median(lab[ring], axis=0)
    close = np.sqrt(((lab - median) ** 2).sum(axis=-1)) < BACKGROUND_DELTA_E
    if close[ring].mean() < MIN_BACKGROUND:
        return None, np.ones((height, width), dtype=bool)
    parts, _ = ndimage.label(close)
    touching = np.unique(parts[ring & close])
    return int(_name_lab(median)), ~np.isin(parts, touching[touching > 0])
