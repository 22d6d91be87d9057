"""The assistant hands images straight to a backend that sees (a tiny random LLaVA through
``hf-vision``), with or without the perception notes, and never to one that does not."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from PIL import Image

from omnifuse.assistant.assistant import Assistant
from omnifuse.assistant.perception import Perceiver
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, create_llm


class Recorded:
    """A real backend whose chat calls are kept, so a test sees what the assistant sent."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.sent: list[list[ChatMessage]] = []

    @property
    def modalities(self) -> frozenset[str]:
        return self.llm.modalities

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        self.sent.append(list(messages))
        return self.llm.chat_stream(messages, config)

    def close(self) -> None:
        self.llm.close()


class Labels:
    """An image classifier that names the image's dominant channel, for the notes."""

    def classify(self, images: Sequence[Any], k: int = 5) -> list[list[tuple[str, float]]]:
        names = ("red thing", "green thing", "blue thing")
        return [
            [(names[max(range(3), key=lambda c: im.getpixel((20, 20))[c])], 0.9)] for im in images
        ]


def assistant(llm: LLM, **options: Any) -> tuple[Assistant, Recorded]:
    recorded = Recorded(llm)
    perceiver = Perceiver(classifier=Labels(), ocr=False)
    helper = Assistant(llm=cast(LLM, recorded), perceiver=perceiver, examples=(), **options)
    return helper, recorded


RED = Image.new("RGB", (40, 40), (220, 20, 20))


def test_a_vision_backend_gets_the_image_and_the_notes(tiny_vlm: Path) -> None:
    helper, recorded = assistant(
        create_llm("hf-vision", model=tiny_vlm, max_context=1024), grounding="off"
    )
    answer = helper.ask("what is in the picture?", image=RED)
    question = recorded.sent[-1][-1]
    assert question.role == "user" and len(question.images) == 1
    assert question.images[0].tobytes() == RED.tobytes()
    assert "red thing" in question.content and answer.raw == answer.text
    assert all(not m.images for m in recorded.sent[-1][:-1])  # the system prompt stays text
    assert recorded.sent[-1] == list(
        helper.ask_stream("what is in the picture?", image=RED).messages
    )


def test_notes_can_be_left_out_when_the_backend_sees(tiny_vlm: Path) -> None:
    helper, recorded = assistant(
        create_llm("hf-vision", model=tiny_vlm, max_context=1024), notes=False
    )
    helper.ask("what is in the picture?", image=RED)
    question = recorded.sent[-1][-1]
    assert question.images and "red thing" not in question.content
    assert "Notes: none" in question.content


def test_a_text_backend_gets_only_the_notes(tiny_hf_lm: Path) -> None:
    helper, recorded = assistant(create_llm("hf", model=tiny_hf_lm, max_context=1024), native=True)
    helper.ask("what is in the picture?", image=RED)
    question = recorded.sent[-1][-1]
    assert not question.images and "red thing" in question.content
