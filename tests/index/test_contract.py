"""One suite, every backend: add/get/upsert/delete, search against brute force, filters,
persistence, and the errors bad input raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from index_helpers import BACKENDS, EXACT, TEST_CONFIG, brute_force, clustered

from omnifuse.errors import (
    ConfigError,
    InputNotFoundError,
    InvalidValueError,
    UnknownComponentError,
)
from omnifuse.index import (
    Hit,
    IndexClosedError,
    IndexLockedError,
    Matches,
    ReadOnlyIndexError,
    VectorIndex,
    create_index,
    indexes,
    open_index,
)
from omnifuse.index.filters import matches, parse_filter
from omnifuse.index.table import RowTable

MakeIndex = Callable[..., VectorIndex]


def ids_of(hits: list[Hit]) -> list[str]:
    return [hit.id for hit in hits]


def fill(index: VectorIndex, n: int, *, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict]]:
    vectors = clustered(n, index.dim, seed=seed)
    ids = [f"item-{i}" for i in range(n)]
    metadata = [
        {"label": i % 7, "split": ("train", "val", "test")[i % 3], "x": i / n, "odd": i % 2 == 1}
        for i in range(n)
    ]
    index.add(ids, vectors, metadata)
    return ids, vectors, metadata


def test_registry_lists_every_backend() -> None:
    assert set(BACKENDS) <= set(indexes.list())
    assert "exact" in indexes.describe("faiss-flat").lower()
    with pytest.raises(UnknownComponentError, match="faiss-flat"):
        indexes.get("faiss")


def test_add_get_round_trip(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    _, vectors, metadata = fill(index, 50)
    assert len(index) == 50
    assert (index.dim, index.metric, index.backend) == (16, "ip", backend)
    got = index.get(["item-3", "missing", "item-49"])
    assert got[1] is None
    assert got[0] is not None and got[2] is not None
    assert got[0]["id"] == "item-3" and got[0]["metadata"] == metadata[3]
    np.testing.assert_array_equal(got[0]["vector"], vectors[3])
    np.testing.assert_array_equal(got[2]["vector"], vectors[49])


def test_upsert_replaces_vector_and_metadata(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    _, vectors, _ = fill(index, 40)
    index.add(["item-5"], vectors[30:31], [{"label": 99}])
    assert len(index) == 40
    got = index.get(["item-5"])[0]
    assert got is not None and got["metadata"] == {"label": 99}
    np.testing.assert_array_equal(got["vector"], vectors[30])
    hits = index.search(vectors[30:31], k=2)[0]
    assert set(ids_of(hits)) == {"item-5", "item-30"}
    assert index.search(vectors[30:31], k=5, filter={"label": 99})[0][0].id == "item-5"


def test_delete_counts_and_hides_items(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    _, vectors, _ = fill(index, 60)
    assert index.delete(["item-0", "item-1", "nope", "item-0"]) == 2
    assert index.delete(["item-0"]) == 0
    assert len(index) == 58
    assert index.get(["item-0", "item-2"])[0] is None
    found = {hit.id for hits in index.search(vectors[:4], k=60) for hit in hits}
    assert "item-0" not in found and "item-1" not in found and "item-2" in found


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("name", EXACT)
def test_exact_search_equals_brute_force(name: str, metric: str, make_index: MakeIndex) -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(25, 16)).astype(np.float32)
    index = make_index(name, metric=metric)
    index.add([f"v{i}" for i in range(300)], base)
    want_scores, want_rows = brute_force(base, queries, 10, metric)
    results = index.search(queries, k=10)
    for hits, rows, scores in zip(results, want_rows, want_scores, strict=True):
        assert ids_of(hits) == [f"v{r}" for r in rows]
        np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", EXACT)
def test_exact_search_after_deletes_and_upserts(name: str, make_index: MakeIndex) -> None:
    index = make_index(name)
    ids, vectors, _ = fill(index, 200)
    gone = ids[::3]
    index.delete(gone)
    moved = clustered(10, 16, seed=9)
    index.add(ids[1:11], moved)
    live = {i: v for i, v in zip(ids, vectors, strict=True) if i not in gone}
    live.update(zip(ids[1:11], moved, strict=True))
    names, base = list(live), np.stack(list(live.values()))
    _, rows = brute_force(base, vectors[:8], 10)
    for hits, want in zip(index.search(vectors[:8], k=10), rows, strict=True):
        assert ids_of(hits) == [names[r] for r in want]


def test_approximate_recall(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    _, vectors, _ = fill(index, 2000)
    queries = clustered(50, 16, seed=5)
    _, rows = brute_force(vectors, queries, 10)
    results = index.search(queries, k=10)
    recall = np.mean(
        [
            len({f"item-{r}" for r in want} & set(ids_of(hits))) / 10
            for hits, want in zip(results, rows, strict=True)
        ]
    )
    assert recall >= (0.999 if backend in EXACT else 0.9)


FILTERS: list[dict[str, Any]] = [
    {"label": 3},
    {"label": [1, 4]},
    {"split": "val"},
    {"x": {"$gte": 0.25, "$lt": 0.5}},
    {"label": {"$in": [0, 2]}, "split": ["train", "test"], "x": {"$lte": 0.9}},
    {"odd": True},
    {"label": 6, "odd": False, "split": "train"},
    {"missing_field": 1},
    {"label": []},
]


Filled = tuple[VectorIndex, list[str], np.ndarray, list[dict]]


@pytest.fixture(scope="module", params=BACKENDS)
def filled_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    """One 600-item index per backend, shared by the (read-only) filter tests."""
    backend = str(request.param)
    folder = tmp_path_factory.mktemp("filters") / backend
    index = create_index(backend, folder, dim=16, **TEST_CONFIG[backend])
    yield (index, *fill(index, 600))
    index.close()


@pytest.mark.parametrize("filter", FILTERS, ids=[str(f) for f in FILTERS])
def test_filtered_search_equals_brute_force_on_the_matches(
    filled_index: Filled, filter: dict[str, Any]
) -> None:
    index, ids, vectors, metadata = filled_index
    backend = index.backend
    conditions = parse_filter(filter)
    keep = [i for i, m in enumerate(metadata) if matches(conditions, m)]
    queries = clustered(6, 16, seed=3)
    results = index.search(queries, k=5, filter=filter)
    if not keep:
        assert results == [[] for _ in queries]
        return
    _, rows = brute_force(vectors[keep], queries, 5)
    found = 0
    for hits, want in zip(results, rows, strict=True):
        assert all(matches(conditions, hit.metadata) for hit in hits)
        assert len(hits) == min(5, len(keep))
        if backend in EXACT or len(keep) <= 50:  # few matches are searched exactly everywhere
            assert ids_of(hits) == [ids[keep[r]] for r in want]
        found += len(set(ids_of(hits)) & {ids[keep[r]] for r in want})
    assert found / rows.size >= 0.8


def pairs(results: list[list[Hit]]) -> list[list[tuple[str, float]]]:
    return [[(hit.id, float(np.float32(hit.score))) for hit in hits] for hits in results]


@pytest.mark.parametrize("filter", [None, *FILTERS[:4]], ids=str)
def test_search_ids_finds_what_search_finds(filled_index: Filled, filter: Any) -> None:
    index, *_ = filled_index
    queries = clustered(6, 16, seed=4)
    matches = index.search_ids(queries, k=5, filter=filter)
    assert matches.ids.shape == matches.scores.shape and len(matches) == 6
    assert matches.scores.dtype == np.float32
    assert matches.rows() == pairs(index.search(queries, k=5, filter=filter))


def test_search_ids_on_empty_and_deleted(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    queries = clustered(3, 16)
    empty = index.search_ids(queries, k=4)
    assert empty.ids.shape[0] == 3 and empty.rows() == [[], [], []]
    index.add(["a", "b", "c"], clustered(3, 16, seed=2), [{"n": 1}, {"n": 2}, {"n": 3}])
    index.delete(["b"])
    found = index.search_ids(queries, k=4, filter={"n": {"$gte": 1}})
    assert [sorted(item for item, _ in row) for row in found.rows()] == [["a", "c"]] * 3
    assert found.rows() == pairs(index.search(queries, k=4, filter={"n": {"$gte": 1}}))


def test_matches_pad_short_rows() -> None:
    hits = [[Hit("a", 0.5), Hit("b", 0.25)], [], [Hit("c", 1.0)]]
    found = Matches.from_hits(hits, k=3)
    assert found.ids.tolist() == [["a", "b"], [None, None], ["c", None]]
    assert np.isnan(found.scores[1]).all() and found.scores[2, 0] == 1.0
    assert found.rows() == [[("a", 0.5), ("b", 0.25)], [], [("c", 1.0)]]
    table = RowTable(2)
    table.append(["a", "b", "c"], np.eye(3, 2, dtype=np.float32), [{}, {}, {}])
    table.remove(["b"])
    rows = np.array([[2, 0], [0, -1]])
    from_rows = table.matches(np.array([[0.5, 0.25], [1.0, -3e38]], dtype=np.float32), rows)
    assert from_rows.ids.tolist() == [["c", "a"], ["a", None]]
    assert from_rows.rows() == [[("c", 0.5), ("a", 0.25)], [("a", 1.0)]]


def test_filter_semantics_are_the_same_everywhere(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend, dim=4)
    stored = [
        {"v": True},
        {"v": 1},
        {"v": 1.0},
        {"v": "1"},
        {"v": 0},
        {"v": None},
        {"v": [1]},
        {},
        {"v": 'quo"te\\'},
    ]
    index.add([f"m{i}" for i in range(len(stored))], clustered(len(stored), 4), stored)
    cases = {
        "number": ({"v": 1}, {"m0", "m1", "m2"}),
        "bool": ({"v": True}, {"m0", "m1", "m2"}),
        "string": ({"v": "1"}, {"m3"}),
        "range": ({"v": {"$gt": 0.5}}, {"m0", "m1", "m2"}),
        "membership": ({"v": [0, "1"]}, {"m3", "m4"}),
        "escaped string": ({"v": 'quo"te\\'}, {"m8"}),
    }
    for name, (filter, want) in cases.items():
        hits = index.search(np.ones((1, 4), np.float32), k=20, filter=filter)[0]
        assert set(ids_of(hits)) == want, name
        assert {m for m in want} == {
            f"m{i}" for i, m in enumerate(stored) if matches(parse_filter(filter), m)
        }, name


def test_persist_and_reopen(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    ids, vectors, metadata = fill(index, 300)
    index.delete(ids[:10])
    index.add(["new"], vectors[:1], [{"label": -1, "nested": {"a": [1, 2]}}])
    before = index.search(vectors[20:25], k=7, filter={"split": "train"})
    index.flush()
    index.add(["after-flush"], vectors[1:2], [{"label": -2}])
    path = index.path
    index.close()
    reopened = open_index(path)
    try:
        assert reopened.backend == backend and len(reopened) == 292
        assert reopened.get(["item-0"])[0] is None
        got = reopened.get(["new", "after-flush", "item-200"])
        assert got[0] is not None and got[0]["metadata"] == {"label": -1, "nested": {"a": [1, 2]}}
        assert got[1] is not None and got[1]["metadata"] == {"label": -2}
        assert got[2] is not None and got[2]["metadata"] == metadata[200]
        np.testing.assert_array_equal(got[2]["vector"], vectors[200])
        after = reopened.search(vectors[20:25], k=7, filter={"split": "train"})
        assert [ids_of(h) for h in after] == [ids_of(h) for h in before]
    finally:
        reopened.close()


def test_empty_index_and_k_beyond_size(backend: str, make_index: MakeIndex) -> None:
    index = make_index(backend)
    queries = clustered(3, 16)
    assert index.search(queries, k=5) == [[], [], []]
    assert len(index) == 0
    index.add(["a", "b"], clustered(2, 16, seed=2))
    results = index.search(queries, k=10)
    assert [sorted(ids_of(h)) for h in results] == [["a", "b"]] * 3
    assert index.search(queries[0], k=1)[0][0].id in {"a", "b"}


BAD_ADDS: list[tuple[Any, Any, Any, str]] = [
    (["a"], np.zeros((1, 8)), None, r"shape \[N, 16\]"),
    (["a", "b"], np.zeros((1, 16)), None, "2 ids for 1 vectors"),
    (["a"], np.full((1, 16), np.nan), None, "NaN"),
    (["a", "a"], np.zeros((2, 16)), None, "appears twice"),
    ([""], np.zeros((1, 16)), None, "non-empty string"),
    ([7], np.zeros((1, 16)), None, "non-empty string"),
    ("ab", np.zeros((2, 16)), None, "not one string"),
    (["a"], np.zeros((1, 16)), [{"f": object()}], "JSON"),
    (["a"], np.zeros((1, 16)), [{}, {}], "2 metadata dicts for 1"),
    (["a"], [["x"] * 16], None, "numeric"),
]


@pytest.mark.parametrize(("ids", "vectors", "metadata", "message"), BAD_ADDS)
def test_bad_adds_raise_and_change_nothing(
    ids: Any, vectors: Any, metadata: Any, message: str, make_index: MakeIndex
) -> None:
    for name in ("faiss-flat", "milvus"):
        index = make_index(name)
        index.add(["kept"], clustered(1, 16))
        with pytest.raises(InvalidValueError, match=message):
            index.add(ids, vectors, metadata)
        assert len(index) == 1


@pytest.mark.parametrize(
    ("k", "filter", "message"),
    [
        (0, None, "k must be a positive integer"),
        (True, None, "k must be a positive integer"),
        (5, {"x": {"$foo": 1}}, "unknown operator"),
        (5, {"x": {"$gt": "a"}}, "takes a number"),
        (5, {"bad key": 1}, "identifiers"),
        (5, {"x": None}, "string, number or boolean"),
        (5, ["x"], "dict of field conditions"),
    ],
)
def test_bad_searches_raise(k: Any, filter: Any, message: str, make_index: MakeIndex) -> None:
    index = make_index("faiss-flat")
    index.add(["a"], clustered(1, 16))
    with pytest.raises(InvalidValueError, match=message):
        index.search(clustered(1, 16), k=k, filter=filter)
    with pytest.raises(InvalidValueError, match="queries"):
        index.search(np.zeros((2, 3)), k=1)


def test_creation_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dim"):
        create_index("faiss-flat", tmp_path / "a", dim=0)
    with pytest.raises(ConfigError, match="metric"):
        create_index("faiss-flat", tmp_path / "a", dim=4, metric="cosine")
    with pytest.raises(ConfigError, match="unknown option"):
        create_index("faiss-hnsw", tmp_path / "a", dim=4, nprobe=3)
    with pytest.raises(ConfigError, match="M must be an integer"):
        create_index("faiss-hnsw", tmp_path / "a", dim=4, M=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        create_index("faiss-flat", tmp_path / "full", dim=4)
    create_index("faiss-flat", tmp_path / "b", dim=4).close()
    with pytest.raises(ConfigError, match="already holds an index"):
        create_index("faiss-flat", tmp_path / "b", dim=4)
    with pytest.raises(InputNotFoundError, match="no index here"):
        open_index(tmp_path / "full")


def test_locks_read_only_and_closed(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "ix"
    index = create_index(backend, path, dim=4)
    index.add(["a"], np.ones((1, 4)))
    with pytest.raises(IndexLockedError):
        open_index(path)
    index.close()
    index.close()  # closing twice is harmless
    with pytest.raises(IndexClosedError):
        index.search(np.ones((1, 4)))
    reader = open_index(path, read_only=True)
    try:
        assert len(reader) == 1 and reader.search(np.ones((1, 4)))[0][0].id == "a"
        with pytest.raises(ReadOnlyIndexError):
            reader.add(["b"], np.ones((1, 4)))
        with pytest.raises(ReadOnlyIndexError):
            reader.delete(["a"])
        with pytest.raises(IndexLockedError):
            open_index(path)
    finally:
        reader.close()
