"""World VQA with spoken questions: routes from (image, spoken question) to an answer, on
the same test questions.

- **projector**: the image's EfficientNet grid tokens and the spoken question's Whisper tokens
  become a soft prompt for the frozen built-in LM, which writes the answer
  (the ``world-vqa-gen`` recipe; ``omnifuse.projector``);
- **perception to text**: the :class:`~omnifuse.assistant.assistant.Assistant` transcribes the
  question (faster-whisper), describes the image in words (ImageNet labels, OCR and the
  projector captioner of the ``world-caption`` recipe, since ImageNet labels cannot name
  synthetic shapes) and asks Gemma-3-270M through llama.cpp; its short answer is scored;
- **projector, question transcribed**: the same projector design with only the image as soft
  prompt and the question as text in the LM's prompt (trained on the written questions),
  answering faster-whisper's transcript of the spoken question;
- **assistant with tools**: the same Assistant consulting the answer classifier below as a tool
  (its model folder, with its test accuracy): its answer and probability join the notes, and as
  a model asked the question itself it gives the short answer (the default ``trust_models``);
  on all test questions;
- **answer classifier**: the fusion sweep's best world-VQA model (``low-rank-tensor`` over
  pooled image and spoken-question features, 19 answers), retrained here with the sweep's
  recipe on the same cached features; the reference the other two are compared with.

Every route answers from the raw files of the test split (the classifier from their cached
features). Answers are compared after VQA normalisation, reduced to the first word of the
answer vocabulary they contain (so "There are 2 shapes." counts as "2"). The LLM route is slow
on a CPU, so it answers the first ``--llm-questions`` test questions; every route is also scored
on that subset.

    python bench/vqa_routes.py                          # 800 scenes, LLM on 150 questions
    python bench/vqa_routes.py --llm-questions 20 --runs runs/bench-vqa
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchkit import markdown_table
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.language import ANSWERS, QTYPES
from omnifuse.eval.text_metrics import normalize_answer
from omnifuse.projector import load_answerer, load_captioner, read_projector_config
from omnifuse.projector import train_projector as train_projector_run

FUSION = "low-rank-tensor"
TEXT_QUESTION = (
    "encoders={image: {name: effnet-lite0, image_size: 128}}",
    "projector.tokens={image: 16}",
    "prompt='{question}'",
)
"""Overrides of the VQA run file for a projector that reads the question as text (trained on
the written questions; at test time it reads their transcripts)."""


@dataclass
class Route:
    """One route's answers (by question id), its time per question and its training time."""

    name: str
    answers: dict[str, str] = field(default_factory=dict)
    seconds_per_question: float = float("nan")
    train_seconds: float = float("nan")
    note: str = ""


def vocabulary_answer(text: str) -> str:
    """The first word of ``text`` (normalised) that is a world answer, else the normalised text."""
    normal = normalize_answer(text)
    return next((w for w in normal.split() if w in ANSWERS), normal)


def trained_projector(config: Path, folder: Path, overrides: Sequence[str], retrain: bool) -> Path:
    """The model folder of ``config``, trained now unless it exists (and ``retrain`` is off)."""
    if retrain or not (folder / "metrics.json").is_file():
        settings = [*overrides, f"output={folder}"]
        train_projector_run(read_projector_config(config, settings))
    return folder


def train_seconds(folder: Path) -> float:
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return float(metrics["train"]["seconds"])


def timed(answer: Callable[[], dict[str, str]], count: int) -> tuple[dict[str, str], float]:
    started = time.perf_counter()
    answers = answer()
    return answers, (time.perf_counter() - started) / max(1, count)


def projector_route(folder: Path, rows: Sequence[dict[str, Any]]) -> Route:
    answerer = load_answerer(folder)
    answers, seconds = timed(
        lambda: dict(
            zip(
                [r["id"] for r in rows],
                answerer.answer([r["image"] for r in rows], [r["question_audio"] for r in rows]),
                strict=True,
            )
        ),
        len(rows),
    )
    return Route("projector (soft prompt → built-in LM)", answers, seconds, train_seconds(folder))


def transcribed_route(folder: Path, rows: Sequence[dict[str, Any]]) -> Route:
    """The projector that reads the question as text: faster-whisper transcribes it first."""
    from omnifuse.speech.asr import create_asr

    asr = create_asr()
    answerer = load_answerer(folder)

    def answer() -> dict[str, str]:
        questions = [asr.transcribe(r["question_audio"]).text for r in rows]
        replies = answerer.answer([r["image"] for r in rows], questions)
        return dict(zip([r["id"] for r in rows], replies, strict=True))

    answers, seconds = timed(answer, len(rows))
    return Route(
        "projector, question transcribed (ASR → prompt)", answers, seconds, train_seconds(folder)
    )


def perception_route(
    captioner_dir: Path, rows: Sequence[dict[str, Any]], model_dir: Path | None = None
) -> Route:
    """The Assistant with Gemma-3-270M, consulting the model folder ``model_dir`` as a tool
    when given; each image is perceived once for its questions."""
    from omnifuse.assistant.assistant import Assistant
    from omnifuse.assistant.tools import TaskModelTool, Toolbox
    from omnifuse.io.image import load_image
    from omnifuse.llm import create_llm

    tools = Toolbox([TaskModelTool(model_dir, name="world-vqa")] if model_dir else [])
    assistant = Assistant(
        llm=create_llm("llama-cpp"), captioner=load_captioner(captioner_dir), toolbox=tools
    )
    contexts: dict[str, Any] = {}
    answers: dict[str, str] = {}
    started = time.perf_counter()
    for row in rows:
        if row["image"] not in contexts:
            image = load_image(row["image"])
            contexts[row["image"]] = (assistant.perceive(image=image), {"image": image})
        context, attached = contexts[row["image"]]
        reply = assistant.ask(audio=row["question_audio"], context=context, attached=attached)
        answers[row["id"]] = reply.text
    seconds = (time.perf_counter() - started) / max(1, len(rows))
    name = "perception to text (Assistant + Gemma-3-270M)"
    return Route(
        f"{name} with tools" if model_dir else name,
        answers,
        seconds,
        train_seconds(captioner_dir),
        note="train s: the captioner",
    )


def classifier_route(
    data_dir: Path, cache_dir: Path, epochs: int, max_tokens: int, folder: Path
) -> Route:
    """The sweep's recipe for one fusion; answers of the test split by question id. The model
    is saved to ``folder`` with its test accuracy, for the assistant to consult."""
    from omnifuse.eval.inference import predict, prepare_batches
    from omnifuse.models import save_model
    from omnifuse.sweep.config import SweepConfig, fused_strategy
    from omnifuse.sweep.data import prepare_data
    from omnifuse.sweep.run import reads_tokens, train_strategy

    config = SweepConfig(
        data="world-vqa",
        fusions=[FUSION],
        size=800,
        data_dir=data_dir,
        cache_dir=cache_dir,
        epochs=epochs,
        max_tokens=max_tokens,
        progress=False,
    )
    data = prepare_data(config)
    strategy = fused_strategy(FUSION, config)
    model, _, seconds = train_strategy(strategy, data, config)
    test = (data.splits if reads_tokens(model) else data.pooled)["test"]
    batches = prepare_batches(test)
    started = time.perf_counter()
    predicted = predict(model, batches).predicted.tolist()
    per_question = (time.perf_counter() - started) / max(1, len(predicted))
    names = [name for batch in batches for name in batch.names]
    answers = {n: data.classes[i] for n, i in zip(names, predicted, strict=True)}
    truth = {r["id"]: r["answer"] for r in load_manifest(data_dir / "vqa.jsonl").samples}
    right = sum(answers[n] == truth.get(n) for n in names) / max(1, len(names))
    manifest = str((data_dir / "vqa.jsonl").resolve())
    save_model(model, folder, {"test": {"accuracy": right}, "data": {"manifest": manifest}})
    return Route(
        f"answer classifier ({FUSION}, sweep recipe)",
        answers,
        per_question,
        seconds,
        note="s/question: cached features",
    )


def accuracy(route: Route, rows: Sequence[dict[str, Any]]) -> float:
    hits = [vocabulary_answer(route.answers[r["id"]]) == r["answer"] for r in rows]
    return sum(hits) / len(hits) if hits else float("nan")


def table(routes: Sequence[Route], rows: Sequence[dict[str, Any]], subset: int) -> str:
    reference = next((r for r in routes if r.name.startswith("answer classifier")), None)
    head = ["route", "questions", "accuracy", f"first {subset}"]
    head += [*QTYPES, "Δ vs classifier (pts)", "s/question", "train s"]
    body = []
    for route in routes:
        answered = [r for r in rows if r["id"] in route.answers]
        first = [r for r in rows[:subset] if r["id"] in route.answers]
        by_type = [accuracy(route, [r for r in answered if r["qtype"] == q]) for q in QTYPES]
        delta = "—"
        if reference is not None:
            delta = f"{100 * (accuracy(route, first) - accuracy(reference, first)):+.1f}"
        cells = [
            route.name,
            str(len(answered)),
            f"{accuracy(route, answered):.3f}",
            f"{accuracy(route, first):.3f}",
            *(f"{v:.3f}" for v in by_type),
            delta,
            f"{route.seconds_per_question:.3f}",
            f"{route.train_seconds:.0f}",
        ]
        body.append(cells)
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("runs/data/world-800-s0-vc1"))
    parser.add_argument("--cache", type=Path, default=Path("runs/cache/world-800-s0-vc1"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-vqa"))
    parser.add_argument("--caption-config", default="world-caption")
    parser.add_argument("--vqa-config", default="world-vqa-gen")
    parser.add_argument("--llm-questions", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=15, help="classifier epochs (sweep: 15)")
    parser.add_argument("--max-tokens", type=int, default=32, help="classifier token cap")
    parser.add_argument("--retrain", action="store_true", help="retrain existing models")
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--skip-classifier", action="store_true")
    parser.add_argument("--skip-plain-llm", action="store_true", help="only the route with tools")
    args = parser.parse_args()

    overrides = [f"data.dir={args.data_dir}", f"cache.dir={args.cache}"]
    started = time.perf_counter()
    captioner = trained_projector(
        args.caption_config, args.runs / "world-caption", overrides, args.retrain
    )
    vqa = trained_projector(
        args.vqa_config,
        args.runs / "world-vqa-gen",
        [*overrides, f"lm.path={captioner / 'lm'}"],
        args.retrain,
    )
    read = trained_projector(
        args.vqa_config,
        args.runs / "world-vqa-gen-text",
        [*overrides, f"lm.path={captioner / 'lm'}", *TEXT_QUESTION],
        args.retrain,
    )
    rows = [r for r in load_manifest(args.data_dir / "vqa.jsonl").samples if r["split"] == "test"]
    subset = min(args.llm_questions, len(rows))
    routes = [projector_route(vqa, rows), transcribed_route(read, rows)]
    if not args.skip_llm and not args.skip_plain_llm:
        routes.append(perception_route(captioner, rows[:subset]))
    classifier = args.runs / "world-vqa-classifier"
    if not args.skip_classifier:
        routes.append(
            classifier_route(args.data_dir, args.cache, args.epochs, args.max_tokens, classifier)
        )
    if not args.skip_llm and (classifier / "model.safetensors").is_file():
        routes.insert(-1, perception_route(captioner, rows, model_dir=classifier))
    print(
        f"world VQA, spoken questions: {len(rows)} test questions; python "
        f"{platform.python_version()}, torch {torch.__version__}, {platform.machine()}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    print(table(routes, rows, subset))
    for route in routes:
        examples = [
            f"{r['question']!r} → {route.answers[r['id']]!r} (true {r['answer']!r})"
            for r in rows[:4]
            if r["id"] in route.answers
        ]
        print(f"\n{route.name}{' — ' + route.note if route.note else ''}:")
        print("\n".join(f"  {e}" for e in examples))


if __name__ == "__main__":
    main()
