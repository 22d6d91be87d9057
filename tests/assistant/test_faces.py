"""People by their faces: scikit-image's astronaut has one, the cat, the coffee cup, textures
and world scenes none; LFW faces are found and LFW non-faces are not; what the notes say."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnifuse.assistant.faces import (
    Face,
    FaceDetector,
    WindowGroup,
    describe_faces,
    group_windows,
    skin_share,
)
from omnifuse.assistant.perception import ImagePerception, Perceiver
from omnifuse.data.world.render import render_scene
from omnifuse.data.world.scene import sample_scene
from omnifuse.errors import ConfigError, InvalidValueError

data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def centre(face: Face) -> tuple[float, float]:
    return face.left + face.width / 2, face.top + face.height / 2


def test_the_astronaut_has_one_face_at_the_top(detector: FaceDetector) -> None:
    (face,) = detector.detect(data.astronaut())
    x, y = centre(face)
    # Her face spans about columns 180-270 and rows 70-170 of the 512-pixel portrait.
    assert 0.38 < x < 0.50 and 0.15 < y < 0.30
    assert 0.12 < face.width < 0.28 and face.width == pytest.approx(face.height)
    assert face.votes >= detector.min_votes and face.where == "top"
    assert describe_faces([face]) == "1 person (face at the top)"


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket", "brick", "gravel"])
def test_photos_without_people_have_no_face(detector: FaceDetector, name: str) -> None:
    """The cat's face, a cup, a rocket and textures the raw cascade fires on are rejected."""
    assert detector.detect(getattr(data, name)()) == []


def test_world_scenes_have_no_face(detector: FaceDetector) -> None:
    rng = np.random.default_rng(3)
    for size in (96, 224, 224, 384):
        assert detector.detect(render_scene(sample_scene(rng), size, rng)) == []


def test_the_face_is_found_whatever_the_size_side_or_colour(detector: FaceDetector) -> None:
    """A large copy is analysed downscaled, a mirrored one has the face on the other side, and a
    grey one (no skin check) still rejects the helmet's reflection."""
    astronaut = data.astronaut()
    (face,) = detector.detect(astronaut)
    (large,) = detector.detect(Image.fromarray(astronaut).resize((1400, 1400)))
    assert centre(large) == pytest.approx(centre(face), abs=0.03)
    (mirrored,) = detector.detect(astronaut[:, ::-1].copy())
    assert mirrored.width == pytest.approx(face.width, rel=0.15)
    assert centre(mirrored)[0] == pytest.approx(1 - centre(face)[0], abs=0.03)
    (grey,) = detector.detect(np.asarray(Image.fromarray(astronaut).convert("L")))
    assert centre(grey) == pytest.approx(centre(face), abs=0.03)
    darker = (astronaut * 0.4).astype(np.uint8)  # a darker face keeps its skin tone
    assert len(detector.detect(darker)) == 1


def test_two_people_side_by_side(detector: FaceDetector) -> None:
    astronaut = data.astronaut()
    faces = detector.detect(np.hstack([astronaut, astronaut]))
    assert [face.where for face in faces] == ["top left", "top right"]
    assert describe_faces(faces) == "2 persons (faces at the top left and the top right)"


def lfw_picture(crop: np.ndarray) -> np.ndarray:
    """A 25×25 LFW crop in [0, 1] as a 100-pixel face on a 160-pixel grey picture."""
    face = Image.fromarray((crop * 255).astype(np.uint8)).resize((100, 100))
    return np.pad(np.asarray(face), 30, constant_values=128)


def test_lfw_faces_are_found_and_non_faces_are_not(detector: FaceDetector) -> None:
    """scikit-image's LFW subset: the first 100 crops are faces, the next 100 are not."""
    crops = data.lfw_subset()
    found = [len(detector.detect(lfw_picture(crop))) for crop in (*crops[:50], *crops[100:150])]
    assert sum(n > 0 for n in found[:50]) >= 40
    assert sum(found[50:]) == 0


def test_windows_group_by_place_and_size() -> None:
    boxes = np.array(
        [
            [100, 100, 50],
            [104, 98, 52],
            [98, 103, 48],
            [100, 100, 50],  # a second pass at the same size: a vote, not a scale
            [300, 40, 30],
            [110, 110, 90],  # same place, much larger: another group
        ],
        np.float64,
    )
    groups = group_windows(boxes)
    assert [(g.votes, g.scales) for g in groups] == [(4, 3), (1, 1), (1, 1)]
    assert groups[0].box == pytest.approx([100.5, 100.25, 50.0])
    assert group_windows(np.zeros((0, 3))) == []
    assert isinstance(groups[0], WindowGroup)


def test_skin_share_across_skin_tones() -> None:
    whole = np.array([0.0, 0.0, 50.0])
    for tone in [(224, 172, 140), (198, 134, 66), (141, 85, 36), (60, 40, 30)]:
        assert skin_share(np.full((50, 50, 3), tone, np.uint8), whole) == 1.0
    for other in [(128, 128, 128), (40, 80, 220), (30, 30, 30), (40, 170, 60)]:
        assert skin_share(np.full((50, 50, 3), other, np.uint8), whole) == 0.0
    half = np.full((50, 50, 3), (128, 128, 128), np.uint8)
    half[:, :25] = (224, 172, 140)
    assert skin_share(half, whole) == pytest.approx(0.5, abs=0.05)


def test_notes_name_people_only_when_faces_are_found() -> None:
    face = Face(0.35, 0.1, 0.2, 0.2, 17)
    seen = ImagePerception(objects=[("cat", 0.9)], labels=[("tabby", 0.6)], faces=[face])
    assert seen.people == 1
    assert seen.to_prompt() == "objects: cat 90%; people: 1 person (face at the top)"
    unseen = ImagePerception(labels=[("tabby", 0.6)], faces=[])
    assert unseen.people == 0 and "people" not in unseen.to_prompt()
    assert ImagePerception().people is None and describe_faces([]) == ""


def test_perceiver_sees_people_and_can_stop_looking() -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    looking = Perceiver(ocr=False, colours=False)
    seen = looking.see(data.astronaut())
    assert seen.people == 1 and seen.faces is not None
    assert "people: 1 person (face at the top)" in seen.to_prompt()
    cat = looking.see(Image.fromarray(data.chelsea()))
    assert cat.people == 0 and "people" not in cat.to_prompt()
    blind = Perceiver(classifier=looking.classifier, ocr=False, colours=False, faces=False)
    assert blind.see(data.astronaut()).people is None
    strict = FaceDetector(min_votes=1000)
    assert Perceiver(classifier=looking.classifier, ocr=False, faces=strict).faces is strict


def test_bad_settings_and_inputs_raise_typed_errors(detector: FaceDetector) -> None:
    for settings in [
        {"max_side": 10},
        {"scale_factor": 1.0},
        {"min_votes": 0},
        {"min_scales": 0},
        {"min_skin": 1.5},
    ]:
        with pytest.raises(ConfigError):
            FaceDetector(**settings)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="uint8"):
        detector.detect(np.zeros((40, 40), bool))
    with pytest.raises(InvalidValueError, match="channels"):
        detector.detect(np.zeros((40, 40, 2), np.uint8))
    with pytest.raises(InvalidValueError, match="PIL image"):
        detector.detect("astronaut.png")  # type: ignore[arg-type]
    assert detector.detect(np.zeros((12, 300, 3), np.uint8)) == []  # smaller than a window
