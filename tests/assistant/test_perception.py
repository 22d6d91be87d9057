"""Perception to text with the real models: ImageNet labels, OCR, transcripts, video, notes."""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from omnifuse.assistant.perception import (
    FramePerception,
    ImagePerception,
    Perceiver,
    PerceptionContext,
    RapidOcrReader,
    TextBox,
    VideoPerception,
    format_labels,
    keep_labels,
    reading_order,
)
from omnifuse.errors import ConfigError, InputError
from omnifuse.eval.text_metrics import normalize_transcript
from omnifuse.speech.asr import Segment, Transcript

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("faster_whisper")

CAT_LABELS = {"tiger cat", "Egyptian cat", "tabby"}
VIDEO_FPS = 10


@pytest.fixture(scope="module")
def perceiver() -> Perceiver:
    return Perceiver()


@pytest.fixture(scope="module")
def spoken_cards(speech_test: dict[str, tuple[Path, str]]) -> tuple[Path, str]:
    """A real recording ("seven of clubs") from the speech-test set, and its transcript."""
    return speech_test["cards-003"]


def sign(lines: Sequence[str]) -> Image.Image:
    """Dark text on a light background, one line under the other."""
    image = Image.new("RGB", (520, 90 * len(lines) + 40), (245, 245, 235))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for i, line in enumerate(lines):
        draw.text((24, 24 + 90 * i), line, fill=(20, 20, 60), font=font)
    return image


def write_video(path: Path, image: Image.Image, wave: np.ndarray | None, seconds: float) -> Path:
    """A Matroska clip: ``image`` as every frame (MPEG-4) and ``wave`` (16 kHz) as PCM sound."""
    frames = round(seconds * VIDEO_FPS)
    pixels = np.asarray(image.resize((240, 160)))
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("mpeg4", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = 240, 160, "yuv420p"
        video.options = {"qscale": "2"}
        audio = None if wave is None else out.add_stream("pcm_s16le", rate=16000, layout="mono")
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = k, fractions.Fraction(1, VIDEO_FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None and wave is not None:
            pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)[None, :]
            sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 16000, 0
            sound.time_base = fractions.Fraction(1, 16000)
            out.mux(audio.encode(sound))
            out.mux(audio.encode(None))
    return path


class LabelCaptioner:
    """A real, if simple, captioner: names the top ImageNet label of each image."""

    def __init__(self, perceiver: Perceiver) -> None:
        self.perceiver = perceiver

    def caption(self, images: Sequence[Any]) -> list[str]:
        return [
            f"a photo of a {labels[0][0]}"
            for labels in self.perceiver.classifier.classify(images, k=1)
        ]


def test_image_labels_name_the_cat(perceiver: Perceiver, chelsea: Image.Image) -> None:
    seen = perceiver.see(chelsea)
    assert 1 <= len(seen.labels) <= 3
    assert seen.labels[0][0] in CAT_LABELS
    probs = [p for _, p in seen.labels]
    assert probs == sorted(probs, reverse=True) and all(p >= 0.05 for p in probs)
    assert seen.text == [] and seen.caption is None
    # The breeds add up to one everyday category, named first.
    assert seen.objects[0][0] == "cat" and seen.objects[0][1] > 0.85
    assert seen.to_prompt().startswith(f"objects: cat {round(100 * seen.objects[0][1])}%; ")
    assert "labels:" not in seen.to_prompt()  # folded into the category, kept in .labels
    assert seen.colours is not None and seen.colours.colours[0].name == "brown"
    assert "; colours: brown " in seen.to_prompt()


def test_ocr_reads_rendered_text(perceiver: Perceiver, tmp_path: Path) -> None:
    path = tmp_path / "sign.png"
    sign(["Fresh coffee", "Exit 42"]).save(path)
    seen = perceiver.see(path)
    assert [line.lower().replace(" ", "") for line in seen.text] == ["freshcoffee", "exit42"]
    assert "labels: " in seen.to_prompt()
    assert f'; text in image: "{seen.text[0]}", "{seen.text[1]}"' in seen.to_prompt()


def test_ocr_can_be_switched_off(chelsea: Image.Image, perceiver: Perceiver) -> None:
    quiet = Perceiver(classifier=perceiver.classifier, ocr=False, top_k=1)
    seen = quiet.see(sign(["Fresh coffee"]))
    assert seen.text == [] and len(seen.labels) == 1


def test_captioner_output_joins_the_notes(perceiver: Perceiver, chelsea: Image.Image) -> None:
    captioned = Perceiver(
        classifier=perceiver.classifier, ocr=False, captioner=LabelCaptioner(perceiver)
    )
    seen = captioned.see(chelsea)
    assert seen.caption == f"a photo of a {seen.labels[0][0]}"
    assert seen.to_prompt().startswith(f"objects: cat {round(100 * seen.objects[0][1])}%; ")
    assert f"; caption: a photo of a {seen.labels[0][0]}; colours: " in seen.to_prompt()


def test_speech_is_transcribed(perceiver: Perceiver, spoken_cards: tuple[Path, str]) -> None:
    path, reference = spoken_cards
    context = perceiver.perceive(audio=path)
    assert context.image is None and context.video is None
    assert context.transcript is not None
    assert normalize_transcript(context.transcript) == reference
    assert context.to_prompt() == f'Speech: "{context.transcript}"'


def test_video_frames_and_soundtrack(
    perceiver: Perceiver,
    chelsea: Image.Image,
    spoken_cards: tuple[Path, str],
    tmp_path: Path,
) -> None:
    from omnifuse.io import load_audio

    path, reference = spoken_cards
    speech = load_audio(path)
    clip = write_video(tmp_path / "cat.mkv", chelsea, np.pad(speech, (4000, 4000)), 2.0)
    watcher = Perceiver(classifier=perceiver.classifier, asr=perceiver.asr, video_frames=3)
    video = watcher.watch(clip)
    assert video.duration_s == pytest.approx(2.0, abs=0.15)
    assert len(video.frames) == 3
    times = [f.time_s for f in video.frames]
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] < 2.0
    assert all(f.labels[0][0] in CAT_LABELS for f in video.frames)
    assert all(f.summary == "cat" for f in video.frames)
    assert video.transcript is not None
    assert normalize_transcript(video.transcript.text) == reference
    assert video.to_prompt().startswith("2.0 s; frames: 0.")
    assert video.to_prompt().count(" s cat") == 3
    assert video.to_prompt().endswith(f'soundtrack: "{video.transcript.text}"')


def test_silent_video_has_no_transcript(
    perceiver: Perceiver, chelsea: Image.Image, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "quiet.mkv", chelsea, np.zeros(16000, np.float32), 1.0)
    watcher = Perceiver(classifier=perceiver.classifier, asr=perceiver.asr, video_frames=2)
    video = watcher.watch(clip)
    assert video.transcript is None
    assert video.to_prompt().endswith("soundtrack: no speech")


def test_context_renders_one_line_per_input() -> None:
    context = PerceptionContext(
        image=ImagePerception(
            labels=[("tiger cat", 0.384), ("tabby", 0.169)], text=["EXIT"], caption="a cat"
        ),
        speech=Transcript("seven of clubs", [Segment(0.0, 1.2, "seven of clubs")], 1.5),
        video=VideoPerception(
            4.0,
            frames=[FramePerception(0.0, [("ping-pong ball", 0.7)]), FramePerception(2.0, [])],
            transcript=None,
        ),
    )
    assert context.to_prompt() == (
        'Image: caption: a cat; labels: tiger cat 38%, tabby 17%; text in image: "EXIT"\n'
        'Speech: "seven of clubs"\n'
        "Video: 4.0 s; frames: 0.0 s ping-pong ball; soundtrack: no speech"
    )
    assert context.transcript == "seven of clubs"
    assert context.to_dict()["image"]["labels"] == [("tiger cat", 0.384), ("tabby", 0.169)]
    assert PerceptionContext().is_empty and PerceptionContext().to_prompt() == ""


def test_label_helpers() -> None:
    labels = [("a", 0.6), ("b", 0.04), ("c", 0.3)]
    assert keep_labels(labels, 0.05) == [("a", 0.6), ("c", 0.3)]
    assert keep_labels([("a", 0.01)], 0.05) == [("a", 0.01)]
    assert format_labels([("tabby", 0.1649)]) == "tabby 16%"


def test_bad_inputs_raise_typed_errors(perceiver: Perceiver, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image"):
        perceiver.see(b"not an image at all")
    with pytest.raises(InputError):
        perceiver.watch(tmp_path / "missing.mp4")
    with pytest.raises(ConfigError):
        Perceiver(top_k=0)


def test_objects_and_colours_can_be_switched_off(
    perceiver: Perceiver, chelsea: Image.Image
) -> None:
    plain = Perceiver(classifier=perceiver.classifier, ocr=False, objects=False, colours=False)
    seen = plain.see(chelsea)
    assert seen.objects == [] and seen.colours is None and seen.labels[0][0] in CAT_LABELS
    assert seen.to_prompt().startswith("labels: ")


class LabelsOnly:
    """A classifier without ImageNet logits: its labels are used as they are, unfolded."""

    def classify(self, images: Sequence[Any], k: int = 5) -> list[list[tuple[str, float]]]:
        return [[("tabby", 0.5), ("tiger cat", 0.4)][:k] for _ in images]


def test_classifier_without_logits_gives_labels_only(chelsea: Image.Image) -> None:
    seen = Perceiver(classifier=LabelsOnly(), ocr=False, colours=False).see(chelsea)
    assert seen.objects == [] and seen.labels == [("tabby", 0.5), ("tiger cat", 0.4)]


def test_real_photos_read_as_what_they_show(perceiver: Perceiver) -> None:
    """scikit-image's photos: the espresso cup is named with its red saucer; EfficientNet sees
    no person in the astronaut portrait (helmet, bobsled), so no category is claimed, while her
    orange suit is named at the bottom of the picture."""
    data = pytest.importorskip("skimage.data")
    quiet = Perceiver(classifier=perceiver.classifier, ocr=False)
    coffee = quiet.see(Image.fromarray(data.coffee()))
    assert coffee.objects[0][0] in {"espresso", "coffee", "cup"}
    assert coffee.colours is not None and "red" in {c.name for c in coffee.colours.colours}
    astronaut = quiet.see(Image.fromarray(data.astronaut()))
    assert astronaut.objects == []
    assert astronaut.colours is not None
    assert "orange at the bottom" in astronaut.to_prompt()


def two_line_sign() -> Image.Image:
    """Two lines of two words; the second word of each line sits higher than the first, so that
    sorting the boxes by their rounded tops reads it first."""
    image = Image.new("RGB", (640, 260), (245, 245, 235))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=44)
    for x, y, word in [(24, 44, "Fresh"), (330, 26, "coffee"), (24, 160, "Exit"), (330, 142, "42")]:
        draw.text((x, y), word, fill=(20, 20, 60), font=font)
    return image


def test_ocr_lines_in_reading_order(perceiver: Perceiver) -> None:
    image = two_line_sign()
    reader = perceiver.ocr
    assert isinstance(reader, RapidOcrReader)
    found, _ = reader.engine(image)
    assert len(found) == 4  # one box per word: the words are far apart
    tops = sorted((round(min(p[1] for p in box) / 10), str(text)) for box, text, _ in found)
    assert [text for _, text in tops][:2] != ["Fresh", "coffee"]  # the naive order fails
    assert reader(image) == ["Fresh coffee", "Exit 42"]


def test_reading_order_groups_boxes_into_lines() -> None:
    boxes = [
        TextBox(300, 140, 360, 180, "42"),
        TextBox(300, 20, 420, 64, "coffee"),
        TextBox(20, 150, 100, 192, "Exit"),
        TextBox(20, 36, 140, 80, "Fresh"),
        TextBox(20, 260, 200, 300, "Open daily"),
    ]
    assert reading_order(boxes) == ["Fresh coffee", "Exit 42", "Open daily"]
    assert reading_order([]) == []
    # Boxes that barely touch vertically are separate lines.
    assert reading_order([TextBox(200, 0, 260, 40, "b"), TextBox(0, 35, 60, 75, "a")]) == [
        "b",
        "a",
    ]
