"""The filter language (Python, columns, Milvus text, CLI syntax) and the log's framing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omnifuse.errors import InvalidValueError
from omnifuse.index.filters import matches, parse_cli_filters, parse_filter, to_milvus_expr
from omnifuse.index.table import RowTable
from omnifuse.index.wal import WriteAheadLog, encode_record, read_records, replay_operations


def random_metadata(rng: np.random.Generator) -> dict[str, Any]:
    pool: list[Any] = [0, 1, 2, 2.5, True, False, "a", "b", "1", None, [1], {"k": 1}]
    return {f: pool[rng.integers(len(pool))] for f in ("p", "q", "r") if rng.random() < 0.8}


def random_filter(rng: np.random.Generator) -> dict[str, Any]:
    scalars: list[Any] = [0, 1, 2.5, True, "a", "1"]
    out: dict[str, Any] = {}
    for field in rng.choice(["p", "q", "r"], size=rng.integers(1, 3), replace=False):
        kind = rng.integers(3)
        if kind == 0:
            out[str(field)] = scalars[rng.integers(len(scalars))]
        elif kind == 1:
            out[str(field)] = [scalars[i] for i in rng.choice(len(scalars), 2, replace=False)]
        else:
            out[str(field)] = {"$gte": float(rng.integers(0, 2)), "$lt": 2.0 + rng.random()}
    return out


def test_columns_agree_with_python_matching() -> None:
    rng = np.random.default_rng(0)
    metadata = [random_metadata(rng) for _ in range(400)]
    table = RowTable.from_rows(
        np.zeros((400, 2), np.float32), [f"i{i}" for i in range(400)], metadata
    )
    table.remove(["i0", "i7"])
    for _ in range(200):
        conditions = parse_filter(random_filter(rng))
        want = [i not in (0, 7) and matches(conditions, m) for i, m in enumerate(metadata)]
        assert table.select(conditions).tolist() == want


def test_matching_rules() -> None:
    def ok(filter: dict[str, Any], meta: dict[str, Any]) -> bool:
        return matches(parse_filter(filter), meta)

    assert ok({"a": 3}, {"a": 3.0}) and ok({"a": True}, {"a": 1}) and ok({"a": 0}, {"a": False})
    assert not ok({"a": "3"}, {"a": 3}) and not ok({"a": 3}, {"a": "3"})
    assert not ok({"a": 1}, {}) and not ok({"a": 1}, {"a": None}) and not ok({"a": 1}, {"a": [1]})
    assert ok({"a": {"$gt": 1, "$lte": 2}}, {"a": 2}) and not ok({"a": {"$gt": 1}}, {"a": "5"})
    assert ok({"a": ["x", 2]}, {"a": 2}) and not ok({"a": []}, {"a": 2})
    assert ok({"a": 1, "b": "x"}, {"a": 1, "b": "x"}) and not ok({"a": 1, "b": "x"}, {"a": 1})


def test_milvus_expressions() -> None:
    expr = to_milvus_expr(
        parse_filter({"split": 'te"st', "label": [1, 2], "x": {"$gte": 0.5}, "ok": True})
    )
    assert expr == (
        '(metadata["split"] == "te\\"st") and (metadata["label"] == 1 or metadata["label"] == 2)'
        ' and (metadata["x"] >= 0.5) and (metadata["ok"] == true)'
    )
    assert to_milvus_expr([]) == ""


def test_cli_filter_syntax() -> None:
    assert parse_cli_filters(
        ["split=test", "label=[1, 2]", "year>=2020", "year<2024", "n=x y"]
    ) == {
        "split": "test",
        "label": [1, 2],
        "year": {"$gte": 2020, "$lt": 2024},
        "n": "x y",
    }
    with pytest.raises(InvalidValueError, match="FIELD=VALUE"):
        parse_cli_filters(["no operator"])
    with pytest.raises(InvalidValueError, match="given twice"):
        parse_cli_filters(["a=1", "a=2"])
    with pytest.raises(InvalidValueError, match="takes a number"):
        parse_cli_filters(["a>=x"])


def test_log_round_trip_and_torn_or_corrupt_records(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    log = WriteAheadLog(path)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    log.append(
        {"op": "add", "ids": ["a", "b", "c"], "metadata": [{}, {"k": "é"}, {}]}, vectors.tobytes()
    )
    log.append({"op": "delete", "ids": ["b"]})
    log.close()
    records, end = read_records(path)
    assert end == path.stat().st_size
    ops = list(replay_operations(records, 4))
    assert ops[1] == ("delete", ["b"])
    ids, got, meta = ops[0][1]
    assert ids == ["a", "b", "c"] and meta[1] == {"k": "é"}
    np.testing.assert_array_equal(got, vectors)

    third = encode_record({"op": "delete", "ids": ["c"]})
    with open(path, "ab") as f:
        f.write(third[:-1])  # torn: one byte short
    assert read_records(path) == (records, end)
    WriteAheadLog(path, valid_end=end).close()  # reopening for append cuts the torn tail
    assert path.stat().st_size == end

    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in the last record fails its checksum
    path.write_bytes(bytes(data))
    assert len(read_records(path)[0]) == 1
    assert read_records(tmp_path / "absent.log") == ([], 0)
