"""Engines: results in payload order, and a worker's errors raised in the caller with their own
type, whether the work ran in this process, in local processes or on Ray actors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from engine_workers import FailingStart, Square

from omnifuse.engines import LocalEngine, WorkerError, create_engine
from omnifuse.errors import ConfigError, MissingDependencyError


def test_local_engine_runs_in_this_process_in_order() -> None:
    engine = LocalEngine()
    assert engine.in_process
    assert list(engine.map(Square(), [3, 1, 2])) == [
        (9, os.getpid()),
        (1, os.getpid()),
        (4, os.getpid()),
    ]
    with pytest.raises(ConfigError, match="5 is bad"):
        list(engine.map(Square(bad=5), [1, 5]))


def test_local_process_pool_keeps_order_and_error_types() -> None:
    with LocalEngine(2) as engine:
        results = engine.map(Square(bad=4), list(range(6)))
        assert [next(results)[0] for _ in range(4)] == [0, 1, 4, 9]
        with pytest.raises(ConfigError, match="4 is bad") as caught:
            next(results)
        assert "raised on a worker" in "".join(getattr(caught.value, "__notes__", []))
        results.close()
        with pytest.raises(WorkerError, match="Unpicklable: one and two"):
            list(engine.map(Square(odd=1), [0, 1]))


def test_unknown_engines_and_stray_addresses_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        create_engine("spark")
    with pytest.raises(ConfigError, match="--address names a Ray cluster"):
        create_engine("local", address="127.0.0.1:6379")


def test_a_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from omnifuse.engines.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"omnifuse\[ray\]"):
        import_ray()


def test_ray_engine_keeps_order_spreads_over_actors_and_raises_worker_errors(
    ray_address: str,
) -> None:
    with create_engine("ray", address=ray_address, workers=2) as engine:
        results = list(engine.map(Square(), list(range(8))))
        assert [r[0] for r in results] == [x * x for x in range(8)]
        assert os.getpid() not in {r[1] for r in results}
        with pytest.raises(ConfigError, match="3 is bad"):
            list(engine.map(Square(bad=3), list(range(4))))
        with pytest.raises(WorkerError, match="Unpicklable: one and two"):
            list(engine.map(Square(odd=1), [0, 1]))
        with pytest.raises(ConfigError, match="no state"):
            list(engine.map(FailingStart(), [1]))
        assert list(engine.map(Square(), [])) == []


def test_encoding_on_a_local_process_pool_writes_the_in_process_cache(tmp_path: Path) -> None:
    from omnifuse.data.cache import FeatureCache, encode_manifest
    from omnifuse.data.schema import ManifestSchema, write_manifest

    rows = [{"id": f"s{i}", "text": f"scene {i} " + "blue " * (i % 5)} for i in range(20)]
    rows.append({"id": "empty", "text": ""})
    schema = ManifestSchema(modalities={"text": "text"}, id="id", split=None)
    write_manifest(tmp_path / "m.jsonl", rows, schema)
    reports = {}
    for name, engine in (("here", None), ("pool", LocalEngine(2))):
        reports[name] = encode_manifest(
            tmp_path / "m.jsonl", {"text": "gru-text"}, tmp_path / name,
            batch_size=3, shard_size=7, engine=engine,
        )  # fmt: skip
    skipped = [[(s.sample, s.error) for s in r.skipped] for r in reports.values()]
    assert skipped[0] == skipped[1] == [("line 21", "ManifestIssue")]
    assert reports["pool"].encoded == reports["here"].encoded == 20
    here, pool = FeatureCache(tmp_path / "here"), FeatureCache(tmp_path / "pool")
    assert sorted(here.keys("text")) == sorted(pool.keys("text"))
    for key in here.keys("text"):
        difference = here.get("text", key).pooled - pool.get("text", key).pooled
        assert float(difference.abs().max()) <= 1e-6
