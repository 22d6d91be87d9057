"""The assistant's tools (trained models, an index), the toolbox, and grounded answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.assistant.assistant import AnswerStream
from omnifuse.assistant.grounding import CANNOT_TELL, content_words, is_grounded
from omnifuse.assistant.notes import ToolNote
from omnifuse.assistant.perception import ImagePerception, PerceptionContext
from omnifuse.assistant.tools import (
    RetrievalTool,
    TaskModelTool,
    Toolbox,
    ToolRequest,
    known_quality,
    model_answer,
)
from omnifuse.errors import ConfigError
from omnifuse.index import create_index
from omnifuse.models import ModelConfig, build_model, save_model

ANSWERS = ["red", "blue", "yes", "no"]


@pytest.fixture(scope="module")
def vqa_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VQA model (image + written question) saved with its test figures."""
    folder = tmp_path_factory.mktemp("tools") / "shapes-vqa"
    config = ModelConfig(
        modalities={"image": 16, "question": 16},
        encoders={
            "image": {"name": "cnn-image", "image_size": 16, "channels": [8], "dim": 16},
            "question": {"name": "gru-text", "dim": 16},
        },
        classes=ANSWERS,
        task="vqa",
        end_to_end=True,
    )
    manifest = folder.parent / "questions.jsonl"
    questions = ["what colour is the square?", "is there a blue circle?", "how many objects?"]
    manifest.write_text(
        "".join(f'{{"question": "{q}", "answer": "yes"}}\n' for q in questions), encoding="utf-8"
    )
    torch.manual_seed(0)
    metrics = {"test": {"accuracy": 0.71, "macro_f1": 0.6}, "data": {"manifest": str(manifest)}}
    save_model(build_model(config), folder, metrics)
    return folder


def square(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (16, 16), colour)


def test_a_vqa_model_answers_the_question_with_its_probability(vqa_folder: Path) -> None:
    tool = TaskModelTool(vqa_folder, name="shapes")
    request = ToolRequest("what colour is the square?", image=square((200, 0, 0)))
    assert tool.name == "model:shapes" and tool.applies(request)
    assert not tool.applies(ToolRequest("what colour is the square?"))  # no image
    note = tool.run(request)
    assert note is not None and note.text in ANSWERS
    top = note.data["top"]
    assert top[0] == [note.text, note.confidence] and len(top) == 3
    assert 0.25 <= note.confidence <= 1.0 and note.data["answers_question"] is True
    assert note.quality == "test accuracy 0.71"
    assert "confidence" in note.to_prompt() and "test accuracy 0.71" in note.to_prompt()
    # a different question or image changes what the model says
    other = tool.run(ToolRequest("is there a blue circle?", image=square((0, 0, 200))))
    assert other is not None and other.data["top"] != note.data["top"]
    silent = TaskModelTool(vqa_folder, min_confidence=1.01)
    assert silent.run(request) is None


def test_a_question_with_words_the_model_never_met_is_not_put_to_it(vqa_folder: Path) -> None:
    tool = TaskModelTool(vqa_folder)
    assert tool.vocabulary is not None and {"square", "circle", "blue"} <= tool.vocabulary
    skipped = tool.run(ToolRequest("what colour is the dog?", image=square((9, 9, 9))))
    assert skipped is not None and skipped.text == ""
    assert skipped.data["skipped"].endswith("never use dog")
    misheard = tool.run(ToolRequest("how many blogjects?", image=square((9, 9, 9))))
    assert misheard is not None and misheard.text in ANSWERS


def test_known_quality_reads_the_main_figure_of_a_split() -> None:
    assert known_quality({"test": {"accuracy": 0.5}, "val": {"accuracy": 0.9}}) == (
        "test accuracy 0.50"
    )
    assert known_quality({"val": {"macro_f1": 0.25}}) == "val macro f1 0.25"
    assert known_quality({"train": {"seconds": 3}}) is None


def colour_vector(image: Any) -> np.ndarray:
    """A deterministic embedding for the index test: the image's normalised mean colour."""
    mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0) + 1.0
    return mean / np.linalg.norm(mean)


def test_retrieval_puts_the_nearest_items_and_their_scores_in_a_note(tmp_path: Path) -> None:
    index = create_index("faiss-flat", tmp_path / "index", dim=3)
    items = {"r": (250, 5, 5), "g": (5, 250, 5), "b": (5, 5, 250)}
    index.add(
        list(items),
        np.stack([colour_vector(square(c)) for c in items.values()]),
        [{"caption": f"a {name} square"} for name in ("red", "green", "blue")],
    )
    tool = RetrievalTool(index, lambda kind, raws: np.stack([colour_vector(r) for r in raws]), k=2)
    assert not tool.applies(ToolRequest("what is this?"))
    note = tool.run(ToolRequest("what is this?", image=square((240, 20, 10))))
    assert note is not None
    assert note.data["hits"][0]["text"] == "a red square" and len(note.data["hits"]) == 2
    assert note.text.startswith('nearest indexed items to the image: "a red square" (')
    assert note.confidence == pytest.approx(note.data["hits"][0]["score"])
    index.close()


class Failing:
    name = "model:broken"

    def applies(self, request: ToolRequest) -> bool:
        return True

    def run(self, request: ToolRequest) -> ToolNote | None:
        raise RuntimeError("weights missing")


def test_toolbox_runs_the_enabled_tools_and_keeps_a_failure_as_a_note(vqa_folder: Path) -> None:
    request = ToolRequest("what colour is the square?", image=square((0, 0, 200)))
    box = Toolbox([TaskModelTool(vqa_folder, name="a"), Failing()])
    notes = box.consult(request)
    assert [n.name for n in notes] == ["model:a", "model:broken"]
    assert notes[0].seconds > 0 and notes[1].text == "failed"
    assert "weights missing" in notes[1].data["error"]
    assert [n.name for n in Toolbox([Failing()], enabled=["index"]).consult(request)] == []
    assert Toolbox([Failing()], enabled=["model:*"]).is_enabled("model:broken")
    with pytest.raises(ConfigError, match="share a name"):
        Toolbox([Failing(), Failing()])


@pytest.mark.parametrize(
    ("raw", "question", "notes", "strictness", "grounded"),
    [
        ("blue", "what colour is the square?", "Image: colours: blue at the left", "normal", True),
        (
            "green",
            "what colour is the square?",
            "Image: colours: blue at the left",
            "normal",
            False,
        ),
        ("I can't tell.", "what is the cat's name?", "Image: objects: cat 92%", "normal", False),
        ("Tom", "what is the cat's name?", "Image: objects: cat 92%", "normal", False),
        ("Tom", "what is the cat's name?", "Image: objects: cat 92%", "off", True),
        (
            "2",
            "how many triangles are there?",
            "Image: caption: two green triangles",
            "normal",
            True,
        ),
        ("yes", "is there a cat?", "Image: objects: cat 92%", "normal", True),
        ("yes", "is there an animal?", "Image: objects: cat 92%", "normal", True),
        ("no", "is there a dog?", "Image: objects: cat 92%", "normal", False),
        ("yes", "is it asleep?", "Image: objects: cat 92%", "normal", True),
        ("yes", "is it asleep?", "Image: objects: cat 92%", "strict", False),
        ("The cat is on a mat", "what is the cat on?", "Image: objects: cat 92%", "normal", False),
        (
            "brown",
            "what colour is the dog?",
            "Image: colours: brown in the centre",
            "strict",
            False,
        ),
        ("brown", "what colour is the cat?", "Image: objects: cat; colours: brown", "strict", True),
        ("EXIT", "what does the sign say?", "", "normal", False),
        ("coffee", "what drink is this?", "Image: objects: espresso 95%", "normal", True),
        ("13", "how old is the square?", "Image: labels: envelope 13%", "normal", False),
        ("a label", "what is it?", "Image: labels: envelope 13%", "normal", False),
    ],
)
def test_a_reply_stands_only_on_the_notes(
    raw: str, question: str, notes: str, strictness: Any, grounded: bool
) -> None:
    assert is_grounded(raw, raw, question, notes, strictness) is grounded


def test_content_words_drop_stop_words_and_plurals() -> None:
    assert content_words("How many triangles are there? Two.") == {"triangle", "2"}


def finished(pieces: list[str], tools: list[ToolNote], **options: Any) -> Any:
    context = PerceptionContext(image=ImagePerception(labels=[("tabby", 0.6)]))
    stream = AnswerStream(
        iter(pieces), question="what colour is it?", transcript=None, context=context,
        tools=tools, **options,
    )  # fmt: skip
    return stream.answer()


def test_an_unsupported_reply_becomes_what_was_perceived() -> None:
    answer = finished(["green"], [])
    assert not answer.grounded and answer.raw == "green"
    assert answer.text.startswith(CANNOT_TELL) and "tabby" in answer.text


def test_a_model_asked_the_question_gives_the_short_answer_when_trusted() -> None:
    note = ToolNote("model:vqa", "blue", 0.8, data={"answers_question": True})
    trusted = finished(["green"], [note], trust=0.5)
    assert trusted.text == "blue" and trusted.grounded and trusted.raw == "green"
    assert "model:vqa: blue (confidence 80 %)" in trusted.notes
    assert not finished(["green"], [note], trust=0.9).grounded
    assert model_answer([note], 0.0) is note
    assert model_answer([ToolNote("model:cls", "cat", 0.99)], 0.0) is None
