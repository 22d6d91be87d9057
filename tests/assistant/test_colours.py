"""Named colours and where they are: world scenes with known colours, and real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from omnifuse.assistant.colours import (
    NAMES,
    ColourAnalysis,
    ColourRegion,
    analyse_colours,
    describe_position,
    name_pixels,
)
from omnifuse.data.world.render import render_scene
from omnifuse.data.world.scene import COLOURS, Scene, SceneObject, sample_scene
from omnifuse.errors import ConfigError, InvalidValueError


def scene(*objects: tuple[str, str, str, float, float], size: int = 96) -> Image.Image:
    """A world image of ``(shape, colour, size, x, y)`` objects on the usual light background."""
    placed = tuple(SceneObject(*obj) for obj in objects)
    return render_scene(Scene(placed, (236, 230, 240)), size, np.random.default_rng(0))


def test_world_palette_names_itself() -> None:
    """Every colour the world renderer draws is named after itself, and its background white."""
    rgb = np.asarray([[*COLOURS.values(), (236, 236, 236), (224, 248, 224)]], np.uint8)
    assert [NAMES[i] for i in name_pixels(rgb)[0]] == [*COLOURS, "white", "white"]


def test_red_circle_left_of_blue_square() -> None:
    found = analyse_colours(
        scene(("circle", "red", "large", 0.25, 0.5), ("square", "blue", "large", 0.75, 0.5))
    )
    assert found.background == "white"
    # The square covers more than the circle of the same radius, so it comes first.
    assert [(c.name, c.where) for c in found.colours] == [("blue", "right"), ("red", "left")]
    assert found.colours[1].share == pytest.approx(np.pi * 0.13**2, rel=0.15)
    assert found.to_prompt().startswith("blue at the right (")
    assert "), red at the left (5%); " in found.to_prompt()
    assert found.to_prompt().endswith("; background white")


def test_four_small_shapes_in_four_places() -> None:
    found = analyse_colours(
        scene(
            ("star", "purple", "small", 0.2, 0.2),
            ("triangle", "cyan", "small", 0.8, 0.8),
            ("circle", "yellow", "small", 0.5, 0.5),
            ("square", "green", "small", 0.8, 0.2),
        )
    )
    where = {c.name: c.where for c in found.colours}
    assert where == {
        "purple": "top left",
        "cyan": "bottom right",
        "yellow": "centre",
        "green": "top right",
    }


def test_sampled_scenes_name_their_colours_and_sides() -> None:
    """Random world scenes: the named colours are exactly the scene's, each placed on the side
    of the image its objects are on."""
    rng = np.random.default_rng(7)
    for _ in range(12):
        drawn = sample_scene(rng)
        found = analyse_colours(render_scene(drawn, 96, rng))
        assert {c.name for c in found.colours} == {o.colour for o in drawn.objects}
        for region in found.colours:
            xs = [o.x for o in drawn.objects if o.colour == region.name]
            if all(x < 1 / 3 for x in xs):
                assert "left" in region.where
            if all(x > 2 / 3 for x in xs):
                assert "right" in region.where


def test_shared_colour_in_two_places() -> None:
    found = analyse_colours(
        scene(("circle", "red", "large", 0.2, 0.5), ("square", "red", "large", 0.8, 0.5))
    )
    assert [(c.name, c.where) for c in found.colours] == [("red", "left and the right")]


def test_white_object_enclosed_by_colour_still_counts() -> None:
    image = Image.new("RGB", (90, 90), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 70, 70), fill=(30, 60, 220))
    draw.rectangle((35, 35, 55, 55), fill=(255, 255, 255))
    found = analyse_colours(image)
    assert found.background == "white"
    assert [c.name for c in found.colours] == ["blue", "white"]


def test_photos() -> None:
    """The cat is brown (not blue), the astronaut's suit orange and to the lower left."""
    data = pytest.importorskip("skimage.data")
    cat = analyse_colours(Image.fromarray(data.chelsea()))
    assert cat.colours[0].name == "brown" and cat.colours[0].share > 0.5
    assert "blue" not in {c.name for c in cat.colours} and cat.background != "blue"
    astronaut = analyse_colours(Image.fromarray(data.astronaut()))
    suit = next(c for c in astronaut.colours if c.name == "orange")
    assert "bottom" in suit.where and suit.share > 0.1


def test_rendering_and_positions() -> None:
    analysis = ColourAnalysis(
        [ColourRegion("blue", 0.14, "left"), ColourRegion("red", 0.06, "top right")], "white"
    )
    assert (
        analysis.to_prompt()
        == "blue at the left (14%), red at the top right (6%); background white"
    )
    assert ColourRegion("grey", 0.5, "all over").to_prompt() == "grey all over (50%)"
    assert ColourRegion("red", 0.2, "centre").to_prompt() == "red in the centre (20%)"
    assert ColourAnalysis().to_prompt() == "no clear colours"
    assert describe_position(0.1, 0.9) == "bottom left"
    assert describe_position(0.5, 0.5) == "centre"
    assert describe_position(0.5, 0.1) == "top"


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(InvalidValueError, match="uint8"):
        analyse_colours(np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidValueError, match="PIL"):
        analyse_colours("red")
    with pytest.raises(ConfigError):
        analyse_colours(Image.new("RGB", (8, 8)), max_colours=0)
