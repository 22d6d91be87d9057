"""Generation speed: omnifuse's llama-cpp backend against calling llama-cpp-python directly.

Both sides load the same GGUF (Gemma-3-270M Q4_K_M by default) with the same settings (n_ctx,
threads, batch) and decode the same prompt greedily for the same number of tokens; the texts are
checked to be identical, so both sides did the same work. Rounds interleave the two sides (the
order alternates); the table gives the median of each side and the median of the per-round
ratios, omnifuse over reference (above 1 favours omnifuse; for TTFT, reference time over
omnifuse time):

- **generate**: a whole completion, end-to-end tokens per second (prompt evaluation included);
- **stream**: time to first token (TTFT) and decode tokens per second after the first token.

omnifuse evaluates each prompt from scratch (its default, for reproducible output), so the
reference calls ``Llama.reset()`` before each request to do the same work; ``--prompt-cache``
compares both sides reusing the cached prompt prefix instead (llama-cpp-python's default).

    python bench/llm.py                      # about a minute on 2 cores
    python bench/llm.py --threads 1 --rounds 3 --max-tokens 64
    python bench/llm.py --clock cpu          # on a machine busy with other jobs
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from omnifuse.llm import GenerationConfig, create_llm
from omnifuse.llm.llama_cpp import LlamaCppLLM, default_gguf_path

PROMPT = (
    "The following is a short history of Paris, the capital of France.\n\n"
    "Paris began as a small settlement on an island in the river Seine. Over the centuries"
)


@dataclass(frozen=True)
class Timing:
    """One request: seconds to the first piece, seconds in all, and the text produced."""

    first_s: float
    total_s: float
    text: str


@dataclass(frozen=True)
class Row:
    name: str
    reference: list[Timing]
    omnifuse: list[Timing]


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``cpu`` counts the seconds this process ran on a CPU (all threads): on a machine shared with
other jobs it leaves out the time spent waiting for a core, which wall time does not."""


def timed(pieces: Callable[[], Iterator[str]], clock: Callable[[], float]) -> Timing:
    """Consume a stream of text pieces, noting when the first one and the last one arrive."""
    start = clock()
    first = None
    parts = []
    for piece in pieces():
        if first is None:
            first = clock() - start
        parts.append(piece)
    total = clock() - start
    return Timing(first if first is not None else total, total, "".join(parts))


def direct_pieces(llama: Any, max_tokens: int, *, stream: bool, fresh: bool) -> Iterator[str]:
    """The reference: llama-cpp-python's own completion call, greedy, nothing else."""
    if fresh:
        llama.reset()
    result = llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, stream=stream)
    if stream:
        for chunk in result:
            yield chunk["choices"][0]["text"]
    else:
        yield result["choices"][0]["text"]


def run(args: argparse.Namespace) -> tuple[list[Row], int, Path]:
    path = Path(args.model) if args.model else default_gguf_path()
    settings = {"n_ctx": args.n_ctx, "n_batch": 512, "seed": 0}
    llama = llama_cpp.Llama(
        model_path=str(path),
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
        **settings,
    )
    llm = create_llm(
        "llama-cpp",
        model_path=path,
        n_threads=args.threads,
        prompt_cache=args.prompt_cache,
        **settings,
    )
    assert isinstance(llm, LlamaCppLLM)
    config = GenerationConfig(max_tokens=args.max_tokens)
    fresh = not args.prompt_cache
    cases: dict[str, tuple[Callable[[], Iterator[str]], Callable[[], Iterator[str]]]] = {
        "generate": (
            lambda: direct_pieces(llama, args.max_tokens, stream=False, fresh=fresh),
            lambda: iter([llm.generate(PROMPT, config)]),
        ),
        "stream": (
            lambda: direct_pieces(llama, args.max_tokens, stream=True, fresh=fresh),
            lambda: llm.stream(PROMPT, config),
        ),
    }
    clock = CLOCKS[args.clock]
    for reference, omnifuse in cases.values():  # warm-up: first calls allocate buffers
        timed(reference, clock)
        timed(omnifuse, clock)
    rows = {name: Row(name, [], []) for name in cases}
    for round_index in range(args.rounds):
        for name, (reference, omnifuse) in cases.items():
            sides = [(rows[name].reference, reference), (rows[name].omnifuse, omnifuse)]
            if round_index % 2:
                sides.reverse()
            for store, pieces in sides:
                store.append(timed(pieces, clock))
    check = llama.create_completion(PROMPT, max_tokens=args.max_tokens, temperature=0.0)
    n_tokens = int(check["usage"]["completion_tokens"])
    texts = {t.text for row in rows.values() for t in row.reference + row.omnifuse}
    if len(texts) != 1:
        raise SystemExit(f"the two sides produced different texts: {sorted(texts)}")
    llm.close()
    llama.close()
    return list(rows.values()), n_tokens, path


def paired(row: Row, measure: Callable[[Timing], float]) -> tuple[float, float, float]:
    """Median of ``measure`` on each side, and the median of the per-round ratios
    (omnifuse / reference): pairing the two sides of a round cancels drifts in machine load."""
    ref = [measure(t) for t in row.reference]
    omni = [measure(t) for t in row.omnifuse]
    ratios = [o / r for o, r in zip(omni, ref, strict=True)]
    return statistics.median(ref), statistics.median(omni), statistics.median(ratios)


def print_table(rows: list[Row], n_tokens: int) -> None:
    """Rates in tokens per second (higher is better); ratios above 1 favour omnifuse."""
    print(
        "| call | reference tok/s | omnifuse tok/s | ratio | reference TTFT ms "
        "| omnifuse TTFT ms | TTFT ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if row.name == "generate":
            ref, omni, ratio = paired(row, lambda t: n_tokens / t.total_s)
            print(f"| generate (end to end) | {ref:.1f} | {omni:.1f} | {ratio:.3f} | | | |")
            continue
        ref, omni, ratio = paired(row, lambda t: (n_tokens - 1) / (t.total_s - t.first_s))
        ref_ttft, omni_ttft, _ = paired(row, lambda t: 1000 * t.first_s)
        _, _, ttft_ratio = paired(row, lambda t: 1 / t.first_s)
        print(
            f"| stream (decode after first token) | {ref:.1f} | {omni:.1f} | {ratio:.3f} "
            f"| {ref_ttft:.1f} | {omni_ttft:.1f} | {ttft_ratio:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GGUF file (default: Gemma-3-270M Q4_K_M from PyPI)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument(
        "--prompt-cache", action="store_true", help="both sides reuse the cached prompt prefix"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    rows, n_tokens, path = run(args)
    print(
        f"model {path.name}; prompt {len(PROMPT)} chars; {n_tokens} tokens generated (greedy, "
        f"identical text on both sides); threads {args.threads}; rounds {args.rounds} "
        f"(medians); prompt cache {'on' if args.prompt_cache else 'off'}; {args.clock} clock"
    )
    print(
        f"llama-cpp-python {llama_cpp.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}; took {time.perf_counter() - start:.0f} s"
    )
    print()
    print_table(rows, n_tokens)


if __name__ == "__main__":
    main()
