"""People in a photo, found by their frontal faces, as words a language model can use.

ImageNet has no "person" class, so the image labels cannot say whether someone is in a photo
(scikit-image's astronaut portrait reads "football helmet"). This module finds frontal faces
with the LBP cascade scikit-image ships (OpenCV's ``lbpcascade_frontalface``, through
:class:`skimage.feature.Cascade`): fully offline, a fraction of a second on a 512-pixel image.

The cascade alone fires on textures (gravel, fur, a reflection on a helmet), so a face is kept
only when it is found again and again: every window the cascade accepts is a vote, windows of
nearly the same place and size are grouped (as OpenCV's ``groupRectangles`` does), and a group
needs :attr:`FaceDetector.min_votes` windows of at least :attr:`FaceDetector.min_scales`
different sizes (a face is found at many sizes, a texture at a few). In a colour photo the
middle of the face must also hold skin-toned pixels, which rejects grey, blue and black
look-alikes.

What a finding means: faces found are people seen. No face found is **not** evidence that no
one is there: a person seen from the side or the back, far away (a face under about 5 % of the
image's longer side), masked or in a drawing is missed, so callers say nothing rather than
"nobody".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from omnifuse.assistant.colours import describe_position
from omnifuse.errors import ConfigError, InvalidValueError

WINDOW = 24
"""The cascade's window, in pixels: the smallest face it can find in the analysed image."""


@dataclass(frozen=True)
class Face:
    """One face: its box as fractions of the image's width and height (``top`` downwards) and
    how many of the cascade's windows found it (more is surer)."""

    left: float
    top: float
    width: float
    height: float
    votes: int

    @property
    def where(self) -> str:
        """Where its centre lies, in words (``top``, ``bottom left``, ``centre``, ...)."""
        return describe_position(self.left + self.width / 2, self.top + self.height / 2)


def describe_faces(faces: list[Face]) -> str:
    """``1 person (face at the top)``, ``2 persons (faces at the left and the right)``; empty
    when there is none (no face found is not a finding, see the module docstring)."""
    if not faces:
        return ""
    places = [f"the {face.where}" for face in faces]
    listed = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
    if len(faces) == 1:
        return f"1 person (face at {listed})"
    return f"{len(faces)} persons (faces at {listed})"


class FaceDetector:
    """Frontal faces in an image.

    ``max_side``: the image is analysed at most this many pixels on its longer side (speed;
    smaller faces than :data:`WINDOW` pixels at that size are missed). ``scale_factor``: the
    step between the window sizes tried. ``min_votes``: how many nearby windows must agree,
    ``min_scales``: of how many different sizes.
    ``min_skin``: the share of skin-toned pixels the middle of a face needs in a colour image
    (0 turns the check off). The cascade is loaded on first use and shared by every call.
    """

    def __init__(
        self,
        *,
        max_side: int = 512,
        scale_factor: float = 1.1,
        min_votes: int = 10,
        min_scales: int = 4,
        min_skin: float = 0.25,
    ) -> None:
        if max_side < WINDOW or not 1.0 < scale_factor <= 2.0 or min_votes < 1:
            raise ConfigError(
                f"need max_side ≥ {WINDOW}, 1 < scale_factor ≤ 2 and min_votes ≥ 1, got "
                f"{max_side}, {scale_factor}, {min_votes}"
            )
        if not 0.0 <= min_skin <= 1.0 or min_scales < 1:
            raise ConfigError(
                f"need min_skin in [0, 1] and min_scales ≥ 1, got {min_skin}, {min_scales}"
            )
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_votes = min_votes
        self.min_scales = min_scales
        self.min_skin = min_skin
        self._cascade: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._cascade is None:
            from skimage.data import lbp_frontal_face_cascade_filename
            from skimage.feature import Cascade

            self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        return self._cascade

    def detect(self, image: Image.Image | np.ndarray) -> list[Face]:
        """The faces in ``image`` (a PIL image or an (H, W) / (H, W, 3) uint8 array), left to
        right."""
        rgb = _analysed(image, self.max_side)  # (h, w, 3) uint8
        height, width = rgb.shape[:2]
        if min(height, width) < WINDOW:
            return []
        grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0
        with self._lock:
            windows = self._load().detect_multi_scale(
                img=grey,
                scale_factor=self.scale_factor,
                step_ratio=1,
                min_size=(WINDOW, WINDOW),
                max_size=(min(height, width), min(height, width)),
                min_neighbor_number=1,
                intersection_score_threshold=2.0,  # above any overlap: every window kept
            )
        boxes = np.array([(w["c"], w["r"], w["width"]) for w in windows], np.float64)
        groups = group_windows(boxes.reshape(-1, 3))
        coloured = _is_coloured(rgb)
        kept = [
            group
            for group in groups
            if group.votes >= self.min_votes
            and group.scales >= self.min_scales
            and (not coloured or self.min_skin == 0 or skin_share(rgb, group.box) >= self.min_skin)
        ]
        faces = [
            Face(
                float(x / width),
                float(y / height),
                float(size / width),
                float(size / height),
                group.votes,
            )
            for group in _drop_nested(kept)
            for x, y, size in [group.box]
        ]
        return sorted(faces, key=lambda face: face.left)


class WindowGroup(NamedTuple):
    """Windows the cascade accepted at nearly one place and size: their mean ``(x, y, size)``
    box, how many they are and how many different sizes they have."""

    box: np.ndarray
    votes: int
    scales: int


def group_windows(boxes: np.ndarray, eps: float = 0.2) -> list[WindowGroup]:
    """Windows ``(x, y, size)`` of nearly the same place and size, grouped, most votes first.

    Two windows are alike when their corners and sizes differ by at most ``eps`` times the
    smaller size (OpenCV's ``SimilarRects``); groups are the connected sets of alike windows.
    """
    if len(boxes) == 0:
        return []
    from scipy.sparse.csgraph import connected_components

    delta = eps * np.minimum(boxes[:, None, 2], boxes[None, :, 2])  # (N, N)
    alike = (np.abs(boxes[:, None, :] - boxes[None, :, :]) <= delta[..., None]).all(axis=-1)
    count, owner = connected_components(alike, directed=False)
    groups = []
    for index in range(count):
        members = boxes[owner == index]
        groups.append(WindowGroup(members.mean(axis=0), len(members), len(set(members[:, 2]))))
    return sorted(groups, key=lambda group: -group.votes)


def skin_share(rgb: np.ndarray, box: np.ndarray) -> float:
    """The share of skin-toned pixels in the middle three fifths of the box ``(x, y, size)``.

    Skin, whatever its lightness, has chroma in a narrow band: Cb in [77, 127] and Cr in
    [133, 173] of YCbCr (Chai and Ngan, 1999).
    """
    x, y, size = box
    inset = size / 5
    x0, y0 = max(int(x + inset), 0), max(int(y + inset), 0)
    x1, y1 = int(x + size - inset), int(y + size - inset)
    middle = rgb[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    if len(middle) == 0:
        return 0.0
    red, green, blue = middle.T
    cb = 128 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    cr = 128 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    return float(((cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)).mean())


def _drop_nested(kept: list[WindowGroup]) -> list[WindowGroup]:
    """Groups without those lying mostly (over half their area) inside a group with more votes:
    one face found at two sizes, or a face found inside a larger one."""
    out: list[WindowGroup] = []
    for group in sorted(kept, key=lambda group: -group.votes):
        if all(_inside_share(group.box, other.box) <= 0.5 for other in out):
            out.append(group)
    return out


def _inside_share(box: np.ndarray, other: np.ndarray) -> float:
    (x, y, size), (ox, oy, osize) = box, other
    across = max(0.0, min(x + size, ox + osize) - max(x, ox))
    down = max(0.0, min(y + size, oy + osize) - max(y, oy))
    return float(across * down / (size * size))


def _is_coloured(rgb: np.ndarray) -> bool:
    """Whether the picture has colour at all (a grey photo stored as RGB has none)."""
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return float(spread.mean()) > 4.0


def _analysed(image: Image.Image | np.ndarray, max_side: int) -> np.ndarray:
    """``image`` as (h, w, 3) uint8, at most ``max_side`` pixels on its longer side."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise InvalidValueError(
                f"expected an (H, W) or (H, W, 3) uint8 image array, got {image.shape} "
                f"{image.dtype}"
            )
        if image.ndim == 3 and image.shape[-1] not in (3, 4):
            raise InvalidValueError(f"expected 3 or 4 colour channels, got {image.shape}")
        image = Image.fromarray(image if image.ndim == 2 else image[..., :3])
    if not isinstance(image, Image.Image):
        raise InvalidValueError(f"expected a PIL image or an array, got {type(image).__name__}")
    picture = image.convert("RGB")
    if min(picture.size) < 1:
        raise InvalidValueError("the image is empty")
    scale = max_side / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(picture)
