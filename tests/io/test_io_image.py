"""load_image on good inputs: every accepted form decodes to the expected RGB pixels."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from omnifuse.errors import InputTooLargeError
from omnifuse.io import DecodeLimits, load_image

if TYPE_CHECKING:
    from conftest import Media

RED = (255, 0, 0)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_red_png_decodes_to_pure_red(media: Media) -> None:
    img = load_image(media.red_png(size=(8, 6)))
    assert img.mode == "RGB"
    assert img.size == (8, 6)
    assert (np.asarray(img) == RED).all()


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("PNG", {}, 0),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("JPEG", {"quality": 95}, 3),
        ("PPM", {}, 0),
        ("TGA", {}, 0),
    ],
)
def test_common_formats_decode_to_the_same_colour(
    media: Media, fmt: str, options: dict[str, object], tolerance: int
) -> None:
    colour = (30, 144, 200)
    path = media.image(f"img.{fmt.lower()}", Image.new("RGB", (16, 16), colour), fmt, **options)
    decoded = _pixels(load_image(path))
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded - colour).max() <= tolerance


def test_bytes_and_path_give_the_same_pixels(media: Media) -> None:
    path = media.jpeg()
    from_path = np.asarray(load_image(path))
    from_bytes = np.asarray(load_image(path.read_bytes()))
    assert np.array_equal(from_path, from_bytes)


def test_image_is_fully_loaded_and_independent_of_the_file(media: Media) -> None:
    path = media.jpeg()
    img = load_image(path)
    path.unlink()
    assert img.getpixel((0, 0)) is not None
    assert np.asarray(img).shape == (48, 64, 3)


def test_rgba_composites_on_white(media: Media) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    rgba.putpixel((2, 2), (0, 0, 0, 128))
    img = load_image(media.image("alpha.png", rgba, "PNG"))
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 1)) == RED
    assert np.abs(_pixels(img)[2, 2] - 127).max() <= 1


def test_palette_with_transparency_composites_on_white(media: Media) -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    palette.putpixel((3, 3), 1)
    path = media.image("palette.png", palette, "PNG", transparency=0)
    img = load_image(path)
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((3, 3)) == RED


def test_la_composites_on_white(media: Media) -> None:
    la = Image.new("LA", (2, 1), (50, 255))
    la.putpixel((1, 0), (50, 0))
    img = load_image(media.image("la.png", la, "PNG"))
    assert img.getpixel((0, 0)) == (50, 50, 50)
    assert img.getpixel((1, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped(media: Media) -> None:
    grey = np.array([[0, 32896, 65535]], dtype=np.uint16)
    img = load_image(media.image("grey16.png", Image.fromarray(grey), "PNG"))
    assert [img.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128,) * 3, (255,) * 3]


def test_sixteen_bit_rgb_png_is_scaled(media: Media) -> None:
    img = load_image(media.rgb16_png((65535, 0, 32896)))
    assert (np.asarray(img) == (255, 0, 128)).all()


def test_cmyk_jpeg_converts_to_rgb(media: Media) -> None:
    path = media.image("cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    assert np.abs(_pixels(load_image(path)) - RED).max() <= 3


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (4, 2)), (3, (4, 2)), (6, (2, 4)), (8, (2, 4))]
)
def test_exif_orientation_is_applied(media: Media, orientation: int, size: tuple[int, int]) -> None:
    img = Image.new("RGB", (4, 2), (0, 0, 255))
    img.paste(RED, (0, 0, 2, 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = load_image(media.image("oriented.png", img, "PNG", exif=exif))
    assert decoded.size == size
    red_corner = {1: (0, 0), 3: (3, 1), 6: (0, 0), 8: (0, 3)}[orientation]
    assert decoded.getpixel(red_corner) == RED
    assert (np.asarray(decoded) == RED).all(axis=2).sum() == 4


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((3, 5), 77, np.uint8), (77, 77, 77)),
        (np.full((3, 5, 1), 77, np.uint8), (77, 77, 77)),
        (np.tile(np.array([1, 2, 3], np.uint8), (3, 5, 1)), (1, 2, 3)),
        (np.tile(np.array([9, 8, 7, 255], np.uint8), (3, 5, 1)), (9, 8, 7)),
        (np.tile(np.array([9, 8, 7, 0], np.uint8), (3, 5, 1)), (255, 255, 255)),
        (np.full((3, 5, 3), 0.5, np.float32), (128, 128, 128)),
        (np.ones((3, 5), np.float64), (255, 255, 255)),
        (np.ones((3, 5), bool), (255, 255, 255)),
    ],
    ids=["grey", "grey1", "rgb", "rgba-opaque", "rgba-clear", "float32", "float64", "bool"],
)
def test_arrays_decode_to_rgb(array: np.ndarray, expected: tuple[int, int, int]) -> None:
    img = load_image(array)
    assert img.size == (5, 3)
    assert (np.asarray(img) == expected).all()


def test_pil_images_of_any_mode_come_back_rgb() -> None:
    rgb = Image.new("RGB", (3, 3), RED)
    assert load_image(rgb).getpixel((1, 1)) == RED
    assert load_image(Image.new("L", (3, 3), 9)).getpixel((0, 0)) == (9, 9, 9)
    assert load_image(Image.new("CMYK", (3, 3), (0, 0, 0, 255))).getpixel((0, 0)) == (0, 0, 0)


def test_pixel_limit_is_inclusive(media: Media) -> None:
    path = media.red_png(size=(20, 20))
    assert load_image(path, limits=DecodeLimits(max_pixels=400)).size == (20, 20)
    with pytest.raises(InputTooLargeError, match="20x20 = 400 pixels"):
        load_image(path, limits=DecodeLimits(max_pixels=399))


def test_oversized_header_is_refused_before_pil_warns(media: Media) -> None:
    path = media.write("big.png", media.bomb_png(8000, 6000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputTooLargeError, match="48000000 pixels"):
            load_image(path)


def test_multi_frame_gif_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in (RED, (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert load_image(buffer.getvalue()).getpixel((0, 0)) == RED
