"""Grounded answers: does the assistant abstain on questions its perception cannot answer, and
still answer the ones it can?

Two sets of questions, about world test scenes and about real photos shipped with scikit-image
(the cat ``chelsea``, the ``astronaut``, the ``coffee`` cup, the ``rocket``, the printed ``page``):

- **unanswerable**: what no note can hold — names, ages, prices, thoughts, the weather, things
  not in the picture ("what colour is the dog?" about a scene of shapes);
- **answerable**: the world VQA test questions (typed, so speech recognition is not measured
  here) and questions about the photos whose answers perception gives (the cat, the espresso,
  the cat's colour).

Each question is asked once (Gemma-3-270M through llama.cpp, greedy), with the world VQA answer
classifier of ``bench/vqa_routes.py`` as a tool when its folder exists; the one reply is then
judged at every strictness (``off``, ``normal``, ``strict``) exactly as the assistant would,
so the columns differ only by the grounding rule. "abstains" counts answers that say the
assistant cannot tell; "right" counts answers holding an accepted word. The "no tools" rows ask
the same questions without the classifier. The answerable world questions are spoken (the
dataset's recordings), as the classifier hears its questions; the unanswerable ones and the photo
questions are typed, so the classifier, which only hears, is not asked them (a spoken nonsense
question would reach it, and it would answer; see the note in ``assistant/tools.py``).

    python bench/grounding.py                      # after bench/vqa_routes.py; about 10 minutes
    python bench/grounding.py --world-questions 20
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchkit import markdown_table
from omnifuse.assistant.grounding import Strictness
from omnifuse.eval.text_metrics import normalize_answer

STRICTNESS: tuple[Strictness, ...] = ("off", "normal", "strict")


@dataclass(frozen=True)
class Question:
    image: str
    question: str
    accepted: tuple[str, ...] = ()  # empty: unanswerable
    source: str = "world"
    audio: str | None = None  # the spoken question's file (answerable world questions)

    @property
    def answerable(self) -> bool:
        return bool(self.accepted)


PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "page")
PHOTO_QUESTIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "chelsea": (
        ("what animal is this?", ("cat",)),
        ("what colour is the cat?", ("brown", "orange", "grey", "gray", "ginger")),
        ("what is the cat's name?", ()),
        ("how old is the cat?", ()),
        ("what is the cat thinking about?", ()),
        ("who owns this cat?", ()),
        ("what did the cat eat for breakfast?", ()),
        ("what colour is the dog?", ()),
    ),
    "astronaut": (
        ("what is the astronaut's name?", ()),
        ("what year was this photo taken?", ()),
        ("what is she saying?", ()),
        ("how tall is she?", ()),
        ("what is her phone number?", ()),
        ("what colour is the horse?", ()),
    ),
    "coffee": (
        ("what drink is this?", ("espresso", "coffee")),
        ("what is in the cup?", ("espresso", "coffee")),
        ("who made this coffee?", ()),
        ("how much did the coffee cost?", ()),
        ("what is the name of the cafe?", ()),
        ("what time was the coffee served?", ()),
    ),
    "rocket": (
        ("what is the name of the launch pad?", ()),
        ("how fast will the rocket fly?", ()),
        ("who built this rocket?", ()),
        ("what colour is the cat?", ()),
    ),
    "page": (
        ("who wrote this page?", ()),
        ("what is the page number?", ()),
    ),
}
WORLD_UNANSWERABLE = (
    "what is the name of the {shape}?",
    "what is the weather like?",
    "how much does the {colour} {shape} weigh?",
    "what colour is the dog?",
    "who drew the {shape}?",
    "how old is the {shape}?",
    "what is the {shape} made of?",
    "where was this picture taken?",
    "what is the {shape} thinking?",
    "what sound does the {colour} {shape} make?",
    "what colour is the car?",
    "what is the price of the {shape}?",
)


def photo_files(out: Path) -> dict[str, Path]:
    """The scikit-image photos as PNG files (greyscale ones as RGB)."""
    import skimage.data

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in PHOTOS:
        pixels = np.asarray(getattr(skimage.data, name)())
        image = Image.fromarray(pixels).convert("RGB")
        files[name] = out / f"{name}.png"
        image.save(files[name])
    return files


def questions(world: Path, photos: dict[str, Path], count: int) -> list[Question]:
    rows = [json.loads(line) for line in (world / "vqa.jsonl").read_text().splitlines()]
    scenes = {
        r["image"]: r for r in map(json.loads, (world / "scenes.jsonl").read_text().splitlines())
    }
    test = [r for r in rows if r["split"] == "test"][:count]
    found = [
        Question(str(world / r["image"]), r["question"], (r["answer"],), "world",
                 str(world / r["question_audio"]))
        for r in test
    ]  # fmt: skip
    images = sorted({r["image"] for r in test})
    for i, template in enumerate(WORLD_UNANSWERABLE * 3):
        image = images[i % len(images)]
        thing = scenes[image]["scene"]["objects"][0]
        text = template.format(shape=thing["shape"], colour=thing["colour"])
        found.append(Question(str(world / image), text, (), "world"))
    for name, asked in PHOTO_QUESTIONS.items():
        for text, accepted in asked:
            found.append(Question(str(photos[name]), text, accepted, source="photo"))
    return found


def right(answer: str, accepted: Sequence[str]) -> bool:
    words = set(normalize_answer(answer).split())
    return any(word in words for word in accepted)


def ask_all(items: Sequence[Question], classifier: Path | None) -> list[dict[str, Any]]:
    """Each question asked once; its reply judged at every strictness."""
    from omnifuse.assistant.answer import decide
    from omnifuse.assistant.assistant import Assistant
    from omnifuse.assistant.grounding import CANNOT_TELL
    from omnifuse.assistant.tools import TaskModelTool, Toolbox
    from omnifuse.io.image import load_image
    from omnifuse.llm import create_llm

    tools = Toolbox([TaskModelTool(classifier, name="world-vqa")] if classifier else [])
    assistant = Assistant(llm=create_llm("llama-cpp"), toolbox=tools, grounding="off")
    seen: dict[str, Any] = {}
    results = []
    for item in items:
        if item.image not in seen:
            image = load_image(item.image)
            seen[item.image] = (assistant.perceive(image=image), {"image": image})
        context, attached = seen[item.image]
        if item.audio is None:
            answer = assistant.ask(item.question, context=context, attached=attached)
        else:
            answer = assistant.ask(audio=item.audio, context=context, attached=attached)
        result: dict[str, Any] = {"item": item, "raw": answer.raw, "notes": answer.notes}
        for strictness in STRICTNESS:
            text, _ = decide(
                answer.raw, answer.question, answer.notes, answer.tools, strictness, trust=0.0
            )
            result[strictness] = (text, text.startswith(CANNOT_TELL))
        results.append(result)
    return results


def summary_rows(name: str, results: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for source in ("world", "photo", "all"):
        chosen = [r for r in results if source in ("all", r["item"].source)]
        unanswerable = [r for r in chosen if not r["item"].answerable]
        answerable = [r for r in chosen if r["item"].answerable]
        cells = [name, source, str(len(unanswerable)), str(len(answerable))]
        for strictness in STRICTNESS:
            abstained = sum(r[strictness][1] for r in unanswerable) / max(1, len(unanswerable))
            correct = sum(
                not r[strictness][1] and right(r[strictness][0], r["item"].accepted)
                for r in answerable
            )  # an abstention is never right, though it repeats notes that may hold the answer
            refused = sum(r[strictness][1] for r in answerable)
            cells += [
                f"{abstained:.2f}",
                f"{correct / max(1, len(answerable)):.2f} ({refused} abstained)",
            ]
        rows.append(cells)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=Path("runs/data/world-800-s0-vc1"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-vqa"))
    parser.add_argument("--world-questions", type=int, default=50)
    parser.add_argument("--show", type=int, default=12, help="examples printed per set")
    args = parser.parse_args()

    started = time.perf_counter()
    photos = photo_files(args.runs / "photos")
    items = questions(args.world, photos, args.world_questions)
    classifier = args.runs / "world-vqa-classifier"
    runs = {"with tools": classifier if (classifier / "config.json").is_file() else None}
    runs["no tools"] = None
    head = ["assistant", "questions", "unanswerable", "answerable"]
    for strictness in STRICTNESS:
        head += [f"abstains ({strictness})", f"right ({strictness})"]
    body = []
    kept: dict[str, list[dict[str, Any]]] = {}
    for name, folder in runs.items():
        if name == "with tools" and folder is None:
            continue
        kept[name] = ask_all(items, folder)
        body += summary_rows(name, kept[name])
    print(f"{len(items)} questions; {time.perf_counter() - started:.0f} s in all")
    print(markdown_table(head, body, "ll" + "r" * (len(head) - 2)))
    for name, results in kept.items():
        print(f"\n{name}: examples (reply → answer at normal):")
        shown = [r for r in results if not r["item"].answerable][: args.show]
        shown += [r for r in results if r["item"].source == "photo" and r["item"].answerable]
        for r in shown:
            item = r["item"]
            print(
                f"  {Path(item.image).name}: {item.question!r} → {r['raw']!r} → {r['normal'][0]!r}"
            )


if __name__ == "__main__":
    main()
