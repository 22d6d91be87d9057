"""``omnifuse ask`` with an image: latency end to end, and what each step costs.

Questions about scikit-image photos and world test scenes go through the Assistant as
``omnifuse ask`` builds it (EfficientNet labels folded into WordNet categories, colours, OCR,
Gemma-3-270M through llama.cpp, greedy), with the world VQA answer classifier of
``bench/vqa_routes.py`` as a tool when its folder exists (it applies to spoken questions about
scenes). Each question is asked with its image decoded and perceived afresh, as a new
``omnifuse ask`` would; the models are loaded once, before timing (a cold ``omnifuse ask``
process, which also loads them, is timed separately with ``--cold``). Per step the seconds come
from the answer's tool notes (``image``: decoding + labels + colours + OCR; ``asr``; each
``model:``/``index`` tool); "LLM" is the rest of the call (prompt evaluation and decoding).

    python bench/ask.py                      # about 3 minutes on 2 cores
    python bench/ask.py --rounds 2 --cold
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchkit import markdown_table
from grounding import photo_files

PHOTO_QUESTIONS = (
    ("chelsea", "what animal is this?"),
    ("coffee", "what is in the cup?"),
    ("astronaut", "what colour is the suit?"),
    ("rocket", "what is this?"),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=Path("runs/data/world-800-s0-vc1"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-vqa"))
    parser.add_argument("--scenes", type=int, default=6, help="spoken world questions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a cold omnifuse ask")
    args = parser.parse_args()

    from omnifuse.assistant.assistant import Assistant
    from omnifuse.assistant.tools import TaskModelTool, Toolbox
    from omnifuse.llm import create_llm

    photos = photo_files(args.runs / "photos")
    asks: list[dict[str, Any]] = [
        {"image": photos[name], "question": question} for name, question in PHOTO_QUESTIONS
    ]
    rows = [json.loads(line) for line in (args.world / "vqa.jsonl").read_text().splitlines()]
    asks += [
        {"image": args.world / r["image"], "audio": args.world / r["question_audio"]}
        for r in [r for r in rows if r["split"] == "test"][: args.scenes]
    ]
    classifier = args.runs / "world-vqa-classifier"
    tools = Toolbox(
        [TaskModelTool(classifier, name="world-vqa")]
        if (classifier / "config.json").is_file()
        else []
    )
    assistant = Assistant(llm=create_llm("llama-cpp"), toolbox=tools)
    assistant.ask(**asks[0])  # loads every model before timing
    assistant.ask(**asks[-1])
    steps: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    for _ in range(args.rounds):
        for ask in asks:
            started = time.perf_counter()
            answer = assistant.ask(**ask)
            total = time.perf_counter() - started
            totals.append(total)
            for note in answer.tools:
                steps[note.name].append(note.seconds)
            steps["LLM (prompt + decoding)"].append(total - sum(n.seconds for n in answer.tools))
    body = [
        ["end to end", str(len(totals)), f"{percentile(totals, 0.5):.2f}",
         f"{percentile(totals, 0.9):.2f}", f"{statistics.mean(totals):.2f}"],
    ]  # fmt: skip
    for name, values in steps.items():
        body.append(
            [name, str(len(values)), f"{percentile(values, 0.5):.2f}",
             f"{percentile(values, 0.9):.2f}", f"{statistics.mean(values):.2f}"]
        )  # fmt: skip
    print(
        f"{len(asks)} questions × {args.rounds} rounds "
        f"({len(PHOTO_QUESTIONS)} typed about photos, {args.scenes} spoken about world scenes)"
    )
    print(markdown_table(["step", "calls", "p50 s", "p90 s", "mean s"], body, "lrrrr"))
    if args.cold:
        command = [sys.executable, "-m", "omnifuse", "ask", PHOTO_QUESTIONS[0][1], "--image",
                   str(photos[PHOTO_QUESTIONS[0][0]]), "--json"]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        print(f"\ncold `omnifuse ask --image` (new process, models loaded): "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
