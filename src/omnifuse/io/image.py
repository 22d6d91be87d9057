"""Image decoding to RGB with a pixel-count limit checked from the header, before any pixel."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageOps

from omnifuse.errors import (
    CorruptInputError,
    EmptyInputError,
    InputError,
    InputTooLargeError,
    InvalidValueError,
    UnsupportedFormatError,
)
from omnifuse.io.failures import decode_failed, decoding, unrecognised
from omnifuse.io.limits import DecodeLimits, resolve_limits
from omnifuse.io.sniff import IMAGE_FORMATS
from omnifuse.io.source import EncodedSource, check_encoded, is_encoded

MODALITY = "image"
WHITE = (255, 255, 255)
EXIF_ORIENTATION = 0x0112

SAFE_PIL_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM", "ICO", "TGA", "AVIF")
"""Decoders tried on encoded input. Others (EPS runs Ghostscript, for one) are never used."""

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def load_image(
    src: object, *, limits: DecodeLimits | None = None, name: str | None = None
) -> Image.Image:
    """Decode ``src`` into a fully loaded RGB image.

    ``src`` is a path, encoded bytes, a PIL image, or an array of shape (H, W), (H, W, 3) or
    (H, W, 4), uint8 or float in [0, 1]. Transparency is composited on white, 16-bit samples are
    scaled to 8 bits, CMYK and palettes are converted, and the EXIF orientation is applied.
    32-bit integer and float images are clipped to 0-255, as PIL converts them. The pixel limit
    is checked on the header's size, before any pixel is decoded.
    """
    limits = resolve_limits(limits)
    if is_encoded(src):
        source = check_encoded(src, modality=MODALITY, limits=limits, name=name)
        return _decode_encoded(source, limits)
    label = name or _describe(src)
    if isinstance(src, Image.Image):
        return _finish(src, label, limits)
    if isinstance(src, np.ndarray) or hasattr(src, "__array__"):
        return _from_array(np.asarray(src), label, limits)
    raise UnsupportedFormatError(
        f"cannot load an image from a {type(src).__name__}", source=label, modality=MODALITY
    )


def _decode_encoded(source: EncodedSource, limits: DecodeLimits) -> Image.Image:
    with source.open() as fh:
        try:
            img = Image.open(fh, formats=_pil_formats())
        except Image.DecompressionBombError as exc:
            raise InputTooLargeError(str(exc), source=source.label, modality=MODALITY) from None
        except Image.UnidentifiedImageError:
            raise _unidentified(source) from None
        except Exception as exc:
            raise decode_failed(exc, source=source.label, modality=MODALITY) from None
        return _finish(img, source.label, limits)


@cache
def _pil_formats() -> tuple[str, ...]:
    """The safe formats this Pillow build can open (AVIF, for one, is optional)."""
    Image.init()
    return tuple(fmt for fmt in SAFE_PIL_FORMATS if fmt in Image.OPEN)


def _unidentified(source: EncodedSource) -> InputError:
    fmt = source.sniff()
    if fmt in IMAGE_FORMATS:
        return CorruptInputError(
            f"has a {fmt.upper()} signature but a malformed header",
            source=source.label,
            modality=MODALITY,
        )
    return unrecognised(fmt, source=source.label, modality=MODALITY)


def _finish(img: Image.Image, label: str, limits: DecodeLimits) -> Image.Image:
    """Check the size, load the pixels, orient and convert; every failure becomes typed."""
    _check_pixels(img.width, img.height, label, limits)
    with decoding(source=label, modality=MODALITY):
        img.load()
        return _to_rgb(_apply_orientation(img))


def _check_pixels(width: int, height: int, label: str, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise EmptyInputError(f"has no pixels ({width}x{height})", source=label, modality=MODALITY)
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            f"is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}",
            source=label,
            modality=MODALITY,
        )


def _apply_orientation(img: Image.Image) -> Image.Image:
    orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(img, dtype=np.float32)
        return Image.fromarray(np.rint(wide / 257.0).astype(np.uint8)).convert("RGB")
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        return _flatten_alpha(img.convert("RGBA"))
    return img.convert("RGB")


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    """Composite on white, so transparent regions do not turn black."""
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


def _from_array(array: np.ndarray, label: str, limits: DecodeLimits) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidValueError(
            f"array shape {array.shape} is not (H, W), (H, W, 3) or (H, W, 4)",
            source=label,
            modality=MODALITY,
        )
    _check_pixels(array.shape[1], array.shape[0], label, limits)
    pixels = np.ascontiguousarray(_to_uint8(array, label))
    return _to_rgb(Image.fromarray(pixels))


def _to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidValueError("array holds NaN or infinity", source=label, modality=MODALITY)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InvalidValueError(
                f"float array values span [{low:.3g}, {high:.3g}], outside [0, 1]",
                source=label,
                modality=MODALITY,
            )
        return np.rint(array * 255.0).astype(np.uint8)
    raise InvalidValueError(
        f"array dtype {array.dtype} is neither uint8 nor float in [0, 1]",
        source=label,
        modality=MODALITY,
    )


def _describe(src: object) -> str:
    if isinstance(src, Image.Image):
        return f"<PIL.Image mode={src.mode} size={src.width}x{src.height}>"
    shape = getattr(src, "shape", None)
    if shape is not None:
        return f"<array shape={tuple(shape)} dtype={getattr(src, 'dtype', '?')}>"
    return f"<{type(src).__name__}>"
