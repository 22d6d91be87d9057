"""The assistant on real photos (scikit-image's), with Gemma-3-270M through llama.cpp: what is
shown, what colour, what text is printed, whether a person is there, and what it cannot know.

Only answers that perception justifies are asserted: each test first checks that the notes hold
the fact, then that the reply gives it (or, for what no note says, that the assistant abstains).
"""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageDraw, ImageFont

from omnifuse.assistant.answer import Answer
from omnifuse.assistant.assistant import Assistant
from omnifuse.assistant.grounding import CANNOT_TELL
from omnifuse.assistant.perception import Perceiver, PerceptionContext
from omnifuse.llm import LLM

pytestmark = pytest.mark.slow
data = pytest.importorskip("skimage.data")
pytest.importorskip("rapidocr_onnxruntime")

Seen = dict[str, tuple[Image.Image, PerceptionContext]]


def sign_on_coffee() -> Image.Image:
    """scikit-image's espresso photo with a light sign of two printed lines across its top."""
    image = Image.fromarray(data.coffee())
    draw = ImageDraw.Draw(image)
    draw.rectangle((120, 10, 480, 160), fill=(250, 250, 240))
    font = ImageFont.load_default(size=44)
    for row, line in enumerate(("Fresh coffee", "Open daily")):
        draw.text((140, 20 + 70 * row), line, fill=(20, 20, 60), font=font)
    return image


@pytest.fixture(scope="module")
def assistant(gemma: LLM) -> Assistant:
    return Assistant(llm=gemma, perceiver=Perceiver())


@pytest.fixture(scope="module")
def seen(assistant: Assistant, chelsea: Image.Image) -> Seen:
    """Each photo, perceived once, with what was perceived."""
    photos = {
        "chelsea": chelsea,
        "astronaut": Image.fromarray(data.astronaut()),
        "coffee": Image.fromarray(data.coffee()),
        "page": Image.fromarray(data.page()).convert("RGB"),
        "sign": sign_on_coffee(),
    }
    return {name: (image, assistant.perceive(image=image)) for name, image in photos.items()}


def ask(assistant: Assistant, seen: Seen, photo: str, question: str) -> Answer:
    """Ask about an attached photo, as a chat does: perceived once, read again by the tools."""
    image, context = seen[photo]
    return assistant.ask(question, context=context, attached={"image": image})


def test_the_notes_hold_what_the_answers_need(seen: Seen) -> None:
    chelsea, astronaut, coffee = (
        seen[name][1].image for name in ("chelsea", "astronaut", "coffee")
    )
    page, sign = seen["page"][1].image, seen["sign"][1].image
    assert chelsea is not None and astronaut is not None and coffee is not None
    assert page is not None and sign is not None
    assert chelsea.objects[0][0] == "cat" and chelsea.people == 0
    assert chelsea.colours is not None and chelsea.colours.colours[0].name == "brown"
    assert astronaut.people == 1 and "people: 1 person (face at the top)" in astronaut.to_prompt()
    assert coffee.objects[0][0] == "espresso" and coffee.people == 0
    assert "segmentation" in page.text[0].lower()
    assert sign.text == ["Fresh coffee", "Open daily"]


@pytest.mark.parametrize(
    ("photo", "question", "said"),
    [
        ("coffee", "What is in the cup?", ("coffee", "espresso")),
        ("coffee", "What is this?", ("coffee", "espresso", "cup")),
        ("chelsea", "What animal is this?", ("cat",)),
        ("chelsea", "What kind of animal is shown?", ("cat",)),
    ],
)
def test_what_is_shown(
    assistant: Assistant, seen: Seen, photo: str, question: str, said: tuple[str, ...]
) -> None:
    answer = ask(assistant, seen, photo, question)
    assert answer.grounded and any(word in answer.text.lower() for word in said), answer.raw


def test_the_cats_colour_is_one_perception_named(assistant: Assistant, seen: Seen) -> None:
    image = seen["chelsea"][1].image
    assert image is not None and image.colours is not None
    answer = ask(assistant, seen, "chelsea", "What colour is the cat?")
    assert answer.grounded and answer.text in {c.name for c in image.colours.colours}


def test_a_person_is_there_when_a_face_was_seen(assistant: Assistant, seen: Seen) -> None:
    assert ask(assistant, seen, "astronaut", "Is there a person in this photo?").text == "yes"
    assert ask(assistant, seen, "astronaut", "How many people are in the photo?").text == "1"


@pytest.mark.parametrize(
    ("photo", "question"), [("page", "What does it say?"), ("sign", "What does the sign say?")]
)
def test_printed_text_is_read_out(
    assistant: Assistant, seen: Seen, photo: str, question: str
) -> None:
    """The reply quotes at least one whole line that OCR read, and no word that is not printed."""
    image = seen[photo][1].image
    assert image is not None and image.text
    answer = ask(assistant, seen, photo, question)
    said = answer.text.lower()
    assert answer.grounded
    assert any(line.lower() in said for line in image.text), answer.raw
    assert set(words(said)) <= set(words(" ".join(image.text).lower())), answer.raw


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text)


@pytest.mark.parametrize(
    ("photo", "question"),
    [
        ("chelsea", "What is the cat's name?"),
        ("chelsea", "How old is the cat?"),
        ("astronaut", "What is her name?"),
        ("coffee", "Who made the coffee?"),
        ("chelsea", "Is there a person in this photo?"),  # no face was seen
        ("coffee", "Is there a cat?"),
        ("chelsea", "What is the cat sitting on?"),
    ],
)
def test_what_no_note_says_is_not_answered(
    assistant: Assistant, seen: Seen, photo: str, question: str
) -> None:
    answer = ask(assistant, seen, photo, question)
    assert not answer.grounded and answer.text.startswith(CANNOT_TELL), answer.raw
    assert seen[photo][1].to_prompt() in answer.text  # and says what it did perceive
