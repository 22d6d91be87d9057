"""How well the speech recogniser hears world captions under each prompt, side by side.

A spoken caption reaches the consistency matcher through its transcript, so every word the
recogniser gets wrong is a word the matcher cannot check. The same recordings (each test
scene's own caption, its one-attribute edits and another scene's caption, spoken as
``bench/consistency.py`` speaks them) are transcribed with no prompt, with the sorted words of
the training captions, and with training sentences (``speech_prompt``, what the checker uses),
alternating per recording; the table gives word error rate and exact transcripts.

    python bench/speech_prompt.py --manifest runs/data/world-1000-s0/scenes.jsonl --limit 40
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from omnifuse.align.consistency.matcher import heard_text, speech_prompt
from omnifuse.align.consistency.pairs import spoken, world_cases
from omnifuse.data.manifest import load_manifest
from omnifuse.eval.text_metrics import normalize_transcript, wer
from omnifuse.speech.asr import create_asr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="a world scenes.jsonl")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=40, help="first N scenes of the split")
    args = parser.parse_args()
    train = [str(r["caption"]) for r in load_manifest(args.manifest).split("train")]
    words = sorted({w for t in train for w in normalize_transcript(t).split()})
    prompts: dict[str, str | None] = {
        "no prompt": None,
        "word list": " ".join(words[:150]),
        "sentences": speech_prompt(train),
    }
    cases = world_cases(args.manifest, args.split, limit=args.limit)
    descriptions = [d for case in cases for d in case.descriptions]
    waves = spoken(descriptions)
    truth = [normalize_transcript(d.text) for d in descriptions]
    asr = create_asr()
    heard: dict[str, list[str]] = {name: [] for name in prompts}
    seconds = dict.fromkeys(prompts, 0.0)
    for wave in waves:
        for name, prompt in prompts.items():
            started = time.perf_counter()
            heard[name].append(heard_text(asr, wave, prompt))
            seconds[name] += time.perf_counter() - started
    print(
        f"# {args.manifest} ({args.split}, {len(cases)} scenes, {len(waves)} recordings); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n"
    )
    print("| prompt | words | WER | exact | seconds per clip |")
    print("|---|---|---|---|---|")
    for name, prompt in prompts.items():
        exact = sum(h == t for h, t in zip(heard[name], truth, strict=True)) / len(truth)
        size = 0 if prompt is None else len(prompt.split())
        print(
            f"| {name} | {size} | {wer(heard[name], truth):.3f} | {exact:.1%} | "
            f"{seconds[name] / len(truth):.2f} |"
        )


if __name__ == "__main__":
    main()
