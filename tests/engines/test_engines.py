"""Engines: results in payload order, and a worker's errors raised in the caller with their own
type, whether the work ran in this process, in local processes or on Ray actors."""

from __future__ import annotations

import os

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
