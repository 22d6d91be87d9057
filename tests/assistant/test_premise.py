"""What a question presupposes (the things it names, not the relations between them), and the
premise tool's note and refusal (the tool on a real aligned model is tested in
tests/align/test_consistency_assistant.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from PIL import Image

from omnifuse.assistant.answer import decide
from omnifuse.assistant.notes import ToolNote
from omnifuse.assistant.premise import PremiseTool, premise_refusal, presuppositions
from omnifuse.assistant.tools import Toolbox, ToolRequest


@pytest.mark.parametrize(
    ("question", "statements"),
    [
        ("What colour is the cat?", ["a cat"]),
        ("what is the cat's name?", ["a cat"]),
        ("Why is the red square above the circle?", ["a red square", "a circle"]),
        ("is the red circle to the left of the blue square?", ["a red circle", "a blue square"]),
        ("what colour is the shape to the left of the circle?", ["a circle"]),
        ("what size is the large red circle?", ["a large red circle"]),
        ("what is the apple on the table made of?", ["an apple", "a table"]),
        ("where is the bus?", ["a bus"]),
        ("is there a red square?", []),
        ("are there two circles?", []),
        ("can you see the dog?", []),
        ("does the image show a cat?", []),
        ("how many circles are there?", []),
        ("what is in the image?", []),
        ("what shape is the blue object?", []),
        ("what colour are the circles?", []),
        ("", []),
    ],
)
def test_presuppositions(question: str, statements: list[str]) -> None:
    assert presuppositions(question) == statements


class WordChecker:
    """Probability 0.9 for statements naming a word of the scene, else 0.1; threshold 0.5."""

    def __init__(self, words: set[str], vocabulary: frozenset[str] | None = None) -> None:
        self.words = words
        self.vocabulary = vocabulary
        self.calls: list[list[str]] = []

    def text_image(self, texts: Sequence[str], image: Any) -> list[tuple[float, float]]:
        self.calls.append(list(texts))
        return [(0.9 if set(t.split()[1:]) <= self.words else 0.1, 0.5) for t in texts]


def test_the_tool_names_the_first_refuted_premise() -> None:
    image = Image.new("RGB", (8, 8))
    checker = WordChecker({"red", "square"})
    tool = PremiseTool(lambda: checker)  # loaded when first needed
    assert not tool.applies(ToolRequest("what colour is the cat?"))  # no image
    assert not tool.applies(ToolRequest("is there a cat?", image=image))
    refuted = tool.run(ToolRequest("is the red square left of the blue circle?", image=image))
    assert refuted is not None and refuted.name == "consistency"
    assert refuted.data["refuted"] == "a blue circle" and refuted.confidence == 0.1
    assert [p["verdict"] for p in refuted.data["premises"]] == ["consistent", "inconsistent"]
    assert refuted.text == "the image does not seem to show a blue circle"
    held = tool.run(ToolRequest("what size is the red square?", image=image))
    assert held is not None and held.data["refuted"] is None
    assert held.text == "the image is consistent with a red square"
    assert checker.calls == [["a red square", "a blue circle"], ["a red square"]]


def test_a_refuted_premise_replaces_the_answer() -> None:
    refuted = ToolNote("consistency", "x", 0.1, data={"refuted": "a red square"})
    held = ToolNote("consistency", "y", 0.9, data={"refuted": None})
    model = ToolNote("model:vqa", "blue", 0.99, data={"answers_question": True})
    assert premise_refusal([held, model]) is None
    refusal = "The image doesn't seem to show a red square."
    assert premise_refusal([model, refuted]) == refusal
    assert decide(
        "blue", "what colour is the red square?", "notes", [model, refuted], trust=0.0
    ) == (
        refusal,
        True,
    )
    assert decide("blue", "what colour is the red square?", "notes", [model, held], trust=0.0) == (
        "blue",
        True,
    )
    box = Toolbox([PremiseTool(WordChecker(set()))], enabled=["index"])
    assert box.consult(ToolRequest("what colour is the cat?", image=Image.new("RGB", (4, 4)))) == []


def test_statements_in_words_the_model_never_read_are_not_checked() -> None:
    image = Image.new("RGB", (8, 8))
    vocabulary = frozenset(["a", "red", "blue", "square", "circle", "shapes"])
    checker = WordChecker(set(), vocabulary)
    tool = PremiseTool(checker)
    cat = tool.run(ToolRequest("what colour is the cat?", image=image))
    assert cat is not None and cat.text == "" and "never saw cat" in cat.data["skipped"]
    assert checker.calls == [] and premise_refusal([cat]) is None
    mixed = tool.run(ToolRequest("is the cat left of the red squares?", image=image))
    assert mixed is not None and mixed.data["skipped"]  # "the red squares" is a plural
    both = tool.run(ToolRequest("is the dog left of the blue circle?", image=image))
    assert both is not None and both.data["unchecked"] == ["a dog"]
    assert both.data["refuted"] == "a blue circle" and checker.calls == [["a blue circle"]]
