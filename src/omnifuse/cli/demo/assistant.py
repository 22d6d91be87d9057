"""The language part of ``omnifuse demo``: transcribe real speech, caption a world image with
the trained projector, and answer a spoken question about a world image."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omnifuse.cli.demo.search import read_rows
from omnifuse.cli.render import console

CAPTION_CONFIG = "world-caption"


def transcribe_demo(speech_test: Path) -> None:
    """Whisper tiny.en (faster-whisper) on real recordings, with their reference transcripts."""
    from omnifuse.eval.text_metrics import wer
    from omnifuse.speech.asr import create_asr

    asr = create_asr()
    rows = [r for r in read_rows(speech_test / "manifest.jsonl") if r["source"] == "librivox"][:2]
    console.print("[bold]speech recognition[/] (faster-whisper, Whisper tiny.en) on real speech:")
    for row in rows:
        start = time.perf_counter()
        heard = asr.transcribe(speech_test / row["audio"]).text
        seconds = time.perf_counter() - start
        console.print(f"  {row['audio']} ({row['duration_s']:.1f} s audio, {seconds:.1f} s)")
        console.print(f"    heard:     {heard}", soft_wrap=True, markup=False)
        console.print(f"    reference: {row['text']}", soft_wrap=True, markup=False)
        console.print(f"    WER {wer([heard], [row['text']]):.3f}")


def captioner_demo(world: Path, out: Path, *, size: int, seed: int) -> Path:
    """Train the projector (image tokens → soft prompt of a frozen decoder) on world captions."""
    from omnifuse.projector import read_projector_config, train_projector

    settings = [
        f"data.dir={world}",
        f"data.size={size}",
        f"data.seed={seed}",
        "data.options={}",
        f"cache.dir={out / 'cache'}",
        f"output={out / 'model'}",
    ]
    console.print(
        f"[bold]captioning[/]: a projector from EfficientNet tokens into a frozen decoder, "
        f"trained on world captions → {out / 'model'}"
    )
    start = time.perf_counter()
    folder = train_projector(read_projector_config(CAPTION_CONFIG, settings))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    scores = metrics.get("test", {})
    shown = ", ".join(f"{k} {float(v):.3f}" for k, v in scores.items() if _is_number(v))
    console.print(f"  trained in {time.perf_counter() - start:.1f} s; test: {shown}")
    return folder


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ask_demo(
    world: Path,
    captioner_dir: Path | None,
    *,
    models: Path | None = None,
    index: Path | None = None,
    aligned: Path | None = None,
) -> None:
    """Answer a spoken question about a world test image with Gemma-3-270M, consulting the
    demo's world VQA model and its aligned index as tools; print what each tool said."""
    from omnifuse.assistant.assistant import Assistant
    from omnifuse.cli.assistant_tools import ToolOptions

    captioner = None
    if captioner_dir is not None:
        from omnifuse.projector.captioning import load_captioner

        captioner = load_captioner(captioner_dir)
    questions = [r for r in read_rows(world / "vqa.jsonl") if r["split"] == "test"]
    row = next((r for r in questions if r["qtype"] == "colour"), questions[0])
    image = world / row["image"]
    if captioner is not None:
        scenes = {r["image"]: r["caption"] for r in read_rows(world / "scenes.jsonl")}
        console.print(f"[bold]caption[/] of {row['image']}:")
        console.print(f"    model:     {captioner.caption([image])[0]}", markup=False)
        console.print(f"    reference: {scenes.get(row['image'], '?')}", markup=False)
    folders = sorted(p for p in models.iterdir() if (p / "config.json").is_file()) if models else []
    tools = ToolOptions(models=folders, index=index, align=aligned).toolbox()
    console.print(
        f"[bold]spoken question[/] about {row['image']} ({row['question_audio']}), "
        f"answered by Gemma-3-270M (llama.cpp) from what the assistant perceived and what its "
        f"tools said ({', '.join(t.name for t in tools.tools) or 'none'}):"
    )
    start = time.perf_counter()
    assistant = Assistant(captioner=captioner, toolbox=tools)
    answer = assistant.ask(image=image, audio=world / row["question_audio"])
    console.print(f"    heard:     {answer.transcript}", markup=False)
    console.print(f"    asked:     {row['question']}", markup=False)
    for note in answer.tools:
        said = note.to_prompt() if note.text else f"{note.name}: {note.data}"
        console.print(f"    {note.seconds:5.2f} s  {said}", soft_wrap=True, markup=False)
    console.print(f"    LLM reply: {answer.raw}", markup=False)
    console.print(f"    answer:    {answer.text}", markup=False)
    console.print(f"    reference: {row['answer']}   ({time.perf_counter() - start:.1f} s)")
