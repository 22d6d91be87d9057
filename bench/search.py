"""Vector search: omnifuse indexes against raw FAISS on clustered 384-d vectors, in one run.

Data: ``--size`` (default 100,000) unit vectors drawn from ``--clusters`` anisotropic Gaussian
clusters of uneven sizes (like sentence embeddings; uniform random vectors would make ANN recall
meaningless), and ``--queries`` queries drawn near data points but not equal to them. The exact
top-10 of every query comes from a raw ``faiss.IndexFlatIP``.

Sections (in one process; each omnifuse search against raw FAISS on the same structure, and
Milvus against ``faiss-flat``, alternate side by side; "vs exact" divides by the exact search
timed earlier, filtered searches are timed alone, and each ingest is timed before its
reference). "Raw FAISS on the same structure" calls ``search`` on the very FAISS object omnifuse
searches (``FaissIndex.faiss_index``): two copies of one structure, even read from the same
file, can differ by up to 20 % in speed from where their memory landed, which would swamp the
overhead measured. Against raw FAISS the two sides take turns in ABBA order for ``--rounds``
rounds; the ratio is the median of the rounds' ratios, with the lowest and highest in brackets,
so a burst of load on a shared machine shows as a wide bracket rather than a wrong figure:

* **exact**: omnifuse ``faiss-flat`` against raw FAISS, batched and one query at a time (goal
  ≥ 0.95×); its hits must equal a separate raw ``IndexFlatIP``'s;
* **approximate**: ``faiss-hnsw`` over an ``ef_search`` sweep and ``faiss-ivf`` over an
  ``nprobe`` sweep: recall@10 against the exact top-10, throughput as a multiple of the exact
  search, and against raw FAISS on the same structure (goal ≥ 0.95×);
* **filtered**: HNSW with metadata filters of 1 %, 10 % and 50 % selectivity;
* **ingest**: durable adds (batches of ``--batch``, each fsync'ed) per backend, and the flush;
  the HNSW reference is a raw FAISS build of the same prefix;
* **milvus**: Milvus Lite on a ``--milvus-size`` subset against ``faiss-flat`` on the same one.

    python bench/search.py                  # about 5 minutes on 2 cores
    python bench/search.py --size 20000 --milvus-size 5000 --rounds 3   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchkit import alternate, markdown_table
from omnifuse.index import VectorIndex, create_index

K = 10


def clustered_vectors(
    n: int, dim: int, clusters: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, cluster of each): clusters of uneven size with their own spread along each
    axis, grouped under shared topics, all leaning along one common direction, the way sentence
    embeddings are anisotropic and hierarchical."""
    topics = max(1, clusters // 20)
    common = rng.normal(size=dim)
    common /= np.linalg.norm(common)
    topic_dirs = rng.normal(size=(topics, dim)) / np.sqrt(dim)
    centres = 0.5 * common + topic_dirs[rng.integers(0, topics, clusters)]
    centres += 0.8 * rng.normal(size=(clusters, dim)) / np.sqrt(dim)
    axes = np.exp(rng.normal(0.0, 0.5, size=(clusters, dim))) / np.sqrt(dim)
    weights = rng.dirichlet(np.full(clusters, 2.0))
    labels = rng.choice(clusters, size=n, p=weights)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):
        part = labels[start : start + 20_000]
        block = centres[part] + 1.2 * rng.normal(size=(len(part), dim)) * axes[part]
        vectors[start : start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors, labels


def near_queries(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Queries near random data points (a perturbed copy, renormalised)."""
    picks = vectors[rng.choice(len(vectors), size=count, replace=False)]
    noisy = picks + rng.normal(scale=0.8 / np.sqrt(vectors.shape[1]), size=picks.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def median_time(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    out = fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def side_by_side(
    raw: Callable[[], Any], omni: Callable[[], Any], rounds: int
) -> tuple[float, float, str, Any]:
    """Raw FAISS and omnifuse in turns after one warm-up call each, ABBA order (raw first in even
    rounds, omnifuse first in odd ones, so neither always runs on the other's warm caches):
    (median raw seconds, median omnifuse seconds, "ratio (lowest–highest)" of raw/omnifuse over
    the rounds, omnifuse's warm-up output)."""
    raw()
    out = omni()
    raw_times: list[float] = []
    omni_times: list[float] = []
    for turn in range(rounds):
        pair = ((raw, raw_times), (omni, omni_times))
        for fn, times in pair if turn % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [r / o for r, o in zip(raw_times, omni_times, strict=True)]
    spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"
    return statistics.median(raw_times), statistics.median(omni_times), spread, out


def ids_ratio(
    raw: Any, index: Any, queries: np.ndarray, rounds: int, truth: np.ndarray | None = None
) -> str:
    """``search_ids`` (ids and scores as arrays, no hit objects) against raw FAISS on the same
    structure, side by side; with ``truth``, its ids must equal those row numbers."""
    _, _, ratio, found = side_by_side(
        lambda: raw.search(queries, K), lambda: index.search_ids(queries, K), rounds
    )
    if truth is not None:
        assert found.ids.astype(int).tolist() == truth.tolist(), "search_ids differs"
    return ratio


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def hit_rows(results: list[list[Any]]) -> list[list[int]]:
    return [[int(hit.id) for hit in hits] for hits in results]


def ingest(
    index: VectorIndex, vectors: np.ndarray, metadata: list[dict[str, Any]], batch: int
) -> tuple[float, float]:
    """Durable adds in batches, then a flush: (vectors per second, flush seconds)."""
    start = time.perf_counter()
    for s in range(0, len(vectors), batch):
        ids = [str(i) for i in range(s, min(s + batch, len(vectors)))]
        index.add(ids, vectors[s : s + batch], metadata[s : s + batch])
    added = time.perf_counter() - start
    start = time.perf_counter()
    index.flush()
    return len(vectors) / added, time.perf_counter() - start


def note(message: str, since: float) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[{time.perf_counter() - since:6.1f} s] {message}", file=sys.stderr, flush=True)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = "l" + "r" * (len(header) - 1)
    return f"### {title}\n\n" + markdown_table(header, rows, align) + "\n"


def per_s(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    parser.add_argument("--batch", type=int, default=1000, help="items per durable add")
    parser.add_argument("--rounds", type=int, default=11, help="side-by-side rounds")
    parser.add_argument("--milvus-size", type=int, default=20_000)
    parser.add_argument("--ref-size", type=int, default=20_000, help="HNSW build reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    vectors, labels = clustered_vectors(args.size, args.dim, args.clusters, rng)
    queries = near_queries(vectors, args.queries, rng)
    singles = queries[: args.single]
    metadata = [{"cluster": int(c), "bucket": i % 100} for i, c in enumerate(labels)]
    workdir = Path(tempfile.mkdtemp(prefix="omnifuse-bench-search-"))
    print(
        f"{args.size:,} vectors × {args.dim} in {args.clusters} clusters, {args.queries} queries, "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    raw_flat = faiss.IndexFlatIP(args.dim)
    raw_flat.add(vectors)
    _, truth = raw_flat.search(queries, K)
    same_neighbours = np.mean(labels[truth] == labels[truth[:, :1]])
    first, tenth = (float(np.mean(np.sum(queries * vectors[truth[:, i]], 1))) for i in (0, 9))
    print(
        f"exact top-10 in the cluster of the top hit: {same_neighbours:.2f}; mean cosine of hit 1: "
        f"{first:.2f}, hit 10: {tenth:.2f}, random pairs: "
        f"{float(np.mean(vectors[:500] @ vectors[-500:].T)):.2f}"
    )

    ingest_rows: list[list[str]] = []
    note("exact", t0)
    # -- exact ---------------------------------------------------------------------------------
    flat = create_index("faiss-flat", workdir / "flat", dim=args.dim)
    rate, flush_s = ingest(flat, vectors, metadata, args.batch)
    raw_add_s, _ = median_time(lambda: faiss.IndexFlatIP(args.dim).add(vectors), 1)
    ingest_rows.append(
        ["faiss-flat", f"{args.size:,}", f"{rate:,.0f}", f"{flush_s:.1f}", "raw IndexFlatIP.add",
         per_s(args.size, raw_add_s)]
    )  # fmt: skip
    raw_same = flat.faiss_index  # type: ignore[attr-defined]
    raw_b, omni_b, ratio_b, omni_hits = side_by_side(
        lambda: raw_same.search(queries, K), lambda: flat.search(queries, K), args.rounds
    )
    assert hit_rows(omni_hits) == truth.tolist(), "exact search differs from IndexFlatIP"
    ids_b = ids_ratio(raw_same, flat, queries, args.rounds, truth)
    raw_1, omni_1, ratio_1, _ = side_by_side(
        lambda: [raw_same.search(q[None], K) for q in singles],
        lambda: [flat.search(q[None], K) for q in singles],
        args.rounds,
    )
    exact_qps = args.queries / omni_b
    exact_rows = [
        ["batched", f"{args.queries}", per_s(args.queries, raw_b), per_s(args.queries, omni_b),
         ratio_b, ids_b],
        ["one at a time", f"{args.single}", per_s(args.single, raw_1), per_s(args.single, omni_1),
         ratio_1, ""],
    ]  # fmt: skip

    note("approximate: building HNSW", t0)
    # -- approximate ---------------------------------------------------------------------------
    approx_rows: list[list[str]] = []
    hnsw = create_index(
        "faiss-hnsw", workdir / "hnsw", dim=args.dim, M=32, ef_construction=80, ef_search=64
    )
    rate, flush_s = ingest(hnsw, vectors, metadata, args.batch)
    ref_n = min(args.ref_size, args.size)
    ref_index = create_index(
        "faiss-hnsw", workdir / "hnsw-ref", dim=args.dim, M=32, ef_construction=80
    )
    ref_meta = metadata[:ref_n]
    raw_ref = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
    raw_ref.hnsw.efConstruction = 80
    start = time.perf_counter()
    for s in range(0, ref_n, args.batch):
        raw_ref.add(vectors[s : min(s + args.batch, ref_n)])
    raw_build_s = time.perf_counter() - start
    ref_rate, _ = ingest(ref_index, vectors[:ref_n], ref_meta, args.batch)  # adds, not the flush
    ref_index.close()
    ingest_rows.append(
        ["faiss-hnsw (M=32, efC=80)", f"{args.size:,}", f"{rate:,.0f}", f"{flush_s:.1f}",
         f"raw IndexHNSWFlat.add, same batches, first {ref_n:,} (omnifuse on the same: "
         f"{ref_rate:,.0f})", per_s(ref_n, raw_build_s)]
    )  # fmt: skip
    raw_hnsw = hnsw.faiss_index  # type: ignore[attr-defined]
    for ef in (16, 32, 64, 128):
        hnsw.set_search_params(ef_search=ef)  # type: ignore[attr-defined]
        assert raw_hnsw.hnsw.efSearch == ef, "raw FAISS searches the same object"
        raw_s, omni_s, ratio, hits = side_by_side(
            lambda: raw_hnsw.search(queries, K), lambda: hnsw.search(queries, K), args.rounds
        )
        approx_rows.append(
            [f"faiss-hnsw ef_search={ef}", f"{recall(hit_rows(hits), truth):.3f}",
             per_s(args.queries, omni_s), f"{args.queries / omni_s / exact_qps:.1f}×",
             per_s(args.queries, raw_s), ratio, ids_ratio(raw_hnsw, hnsw, queries, args.rounds)]
        )  # fmt: skip

    note("approximate: IVF", t0)
    nlist = round(np.sqrt(args.size))
    ivf = create_index(
        "faiss-ivf", workdir / "ivf", dim=args.dim, train_min=args.size // 2, nlist=nlist
    )
    rate, flush_s = ingest(ivf, vectors, metadata, args.batch)
    ingest_rows.append(
        [f"faiss-ivf (trains at {args.size // 2:,})", f"{args.size:,}", f"{rate:,.0f}",
         f"{flush_s:.1f}", "", ""]
    )  # fmt: skip
    raw_ivf = ivf.faiss_index  # type: ignore[attr-defined]
    for nprobe in (4, 8, 16, 32):
        ivf.set_search_params(nprobe=nprobe)  # type: ignore[attr-defined]
        assert raw_ivf.nprobe == nprobe, "raw FAISS searches the same object"
        raw_s, omni_s, ratio, hits = side_by_side(
            lambda: raw_ivf.search(queries, K), lambda: ivf.search(queries, K), args.rounds
        )
        approx_rows.append(
            [f"faiss-ivf nlist={raw_ivf.nlist} nprobe={nprobe}",
             f"{recall(hit_rows(hits), truth):.3f}", per_s(args.queries, omni_s),
             f"{args.queries / omni_s / exact_qps:.1f}×", per_s(args.queries, raw_s), ratio,
             ids_ratio(raw_ivf, ivf, queries, args.rounds)]
        )  # fmt: skip
    ivf.close()

    note("filtered", t0)
    # -- filtered --------------------------------------------------------------------------------
    filter_rows: list[list[str]] = []
    hnsw.set_search_params(ef_search=64)  # type: ignore[attr-defined]
    buckets = np.arange(args.size) % 100
    filters: list[tuple[str, dict[str, Any], np.ndarray]] = [
        ("1 %", {"bucket": 7}, buckets == 7),
        ("10 %", {"bucket": {"$lt": 10}}, buckets < 10),
        ("50 %", {"bucket": {"$lt": 50}}, buckets < 50),
    ]
    for name, filter, keep in filters:
        rows = np.flatnonzero(keep)
        _, local = faiss.knn(queries, vectors[rows], K, metric=faiss.METRIC_INNER_PRODUCT)
        seconds, hits = median_time(partial(hnsw.search, queries, K, filter), args.rounds)
        filter_rows.append(
            [name, f"{len(rows):,}", f"{recall(hit_rows(hits), rows[local]):.3f}",
             per_s(args.queries, seconds), f"{args.queries / seconds / exact_qps:.1f}×"]
        )  # fmt: skip
    hnsw.close()
    flat.close()

    note("milvus", t0)
    # -- milvus ----------------------------------------------------------------------------------
    m = min(args.milvus_size, args.size)
    sub_flat = create_index("faiss-flat", workdir / "sub-flat", dim=args.dim)
    flat_rate, _ = ingest(sub_flat, vectors[:m], metadata[:m], args.batch)
    milvus = create_index("milvus", workdir / "milvus", dim=args.dim)
    milvus_rate, milvus_flush = ingest(milvus, vectors[:m], metadata[:m], args.batch)
    ingest_rows.append(
        ["milvus (Lite, FLAT)", f"{m:,}", f"{milvus_rate:,.0f}", f"{milvus_flush:.1f}",
         f"faiss-flat on the same {m:,}", f"{flat_rate:,.0f}"]
    )  # fmt: skip
    mq = queries[: min(200, args.queries)]
    _, sub_truth = faiss.knn(mq, vectors[:m], K, metric=faiss.METRIC_INNER_PRODUCT)
    flat_s, milvus_s, _, milvus_hits = alternate(
        lambda: sub_flat.search(mq, K), lambda: milvus.search(mq, K), args.rounds
    )
    milvus_rows = [
        [f"{m:,}", f"{len(mq)}", f"{recall(hit_rows(milvus_hits), sub_truth):.3f}",
         per_s(len(mq), milvus_s), per_s(len(mq), flat_s), f"{flat_s / milvus_s:.2f}"]
    ]  # fmt: skip
    milvus.close()
    sub_flat.close()

    print()
    print(
        table(
            "Exact search (omnifuse faiss-flat vs raw FAISS on the same IndexFlat, k=10)",
            [
                "mode",
                "queries",
                "raw FAISS q/s",
                "omnifuse q/s",
                "ratio (lowest–highest)",
                "search_ids ratio",
            ],
            exact_rows,
        )
    )
    print(
        table(
            "Approximate search (recall@10 against the exact top-10)",
            [
                "index",
                "recall@10",
                "q/s",
                "vs exact",
                "raw FAISS q/s, same structure",
                "ratio (lowest–highest)",
                "search_ids ratio",
            ],
            approx_rows,
        )
    )
    print(
        table(
            "Filtered search (faiss-hnsw ef_search=64, recall against the exact filtered top-10)",
            ["selectivity", "matching", "recall@10", "q/s", "vs exact unfiltered"],
            filter_rows,
        )
    )
    print(
        table(
            f"Durable ingest (batches of {args.batch}, one fsync each)",
            ["backend", "items", "vectors/s", "flush s", "reference", "reference vectors/s"],
            ingest_rows,
        )
    )
    print(
        table(
            "Milvus Lite (FLAT) against faiss-flat on the same subset",
            ["items", "queries", "recall@10", "milvus q/s", "faiss-flat q/s", "ratio"],
            milvus_rows,
        )
    )
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
