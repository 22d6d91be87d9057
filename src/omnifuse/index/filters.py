"""Metadata filters: one small language, evaluated in Python or translated for Milvus.

A filter is a dict of conditions on metadata fields, all of which must hold (AND):

* ``{"field": value}`` — equality with a string, number or boolean;
* ``{"field": [a, b]}`` — membership;
* ``{"field": {"$gte": x, "$lt": y}}`` — ranges on numbers (``$gt``, ``$gte``, ``$lt``,
  ``$lte``), plus ``$eq`` and ``$in`` spelled out.

Every backend agrees on types: numbers compare by value (``3 == 3.0``), booleans count as the
numbers 1 and 0 (as in Python and Milvus), a string never equals a number, ranges match numbers
only, and an item without the field never matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omnifuse.errors import InvalidValueError

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = ("$eq", "$in", *RANGE_OPS)
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    """One test on one field: ``op`` is ``$eq``, ``$in`` or a range operator."""

    field: str
    op: str
    value: Any


def _bad(reason: str) -> InvalidValueError:
    return InvalidValueError(reason, source="filter", modality="filter")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(field: str, value: object) -> Scalar:
    if isinstance(value, float) and value != value:
        raise _bad(f"field {field!r}: NaN cannot be matched")
    if not isinstance(value, str | int | float | bool):
        raise _bad(f"field {field!r}: expected a string, number or boolean, got {value!r}")
    return value


def _conditions_of(field: str, spec: object) -> list[Condition]:
    if isinstance(spec, list | tuple):
        return [Condition(field, "$in", tuple(_check_scalar(field, v) for v in spec))]
    if not isinstance(spec, dict):
        return [Condition(field, "$eq", _check_scalar(field, spec))]
    if not spec:
        raise _bad(f"field {field!r}: empty operator dict")
    out = []
    for op, value in spec.items():
        if op == "$eq":
            out.append(Condition(field, op, _check_scalar(field, value)))
        elif op == "$in":
            if not isinstance(value, list | tuple):
                raise _bad(f"field {field!r}: $in takes a list, got {value!r}")
            out.append(Condition(field, op, tuple(_check_scalar(field, v) for v in value)))
        elif op in RANGE_OPS:
            if not _is_number(value) or value != value:
                raise _bad(f"field {field!r}: {op} takes a number, got {value!r}")
            out.append(Condition(field, op, value))
        else:
            raise _bad(f"field {field!r}: unknown operator {op!r}; use one of {OPERATORS}")
    return out


def parse_filter(filter: dict[str, Any] | None) -> list[Condition]:
    """Validate a filter and flatten it into conditions; None or ``{}`` means no filter."""
    if filter is None:
        return []
    if not isinstance(filter, dict):
        raise _bad(f"a filter is a dict of field conditions, got {type(filter).__name__}")
    conditions: list[Condition] = []
    for field, spec in filter.items():
        if not isinstance(field, str) or not FIELD_NAME.match(field):
            raise _bad(f"field names are identifiers (letters, digits, _), got {field!r}")
        conditions.extend(_conditions_of(field, spec))
    return conditions


def _numeric(value: object) -> bool:
    """Numbers and booleans: what the range operators and numeric equality apply to."""
    return isinstance(value, int | float)


def _equal(stored: object, wanted: Scalar) -> bool:
    if isinstance(wanted, str):
        return isinstance(stored, str) and stored == wanted
    return _numeric(stored) and stored == wanted


def _holds(condition: Condition, stored: object) -> bool:
    if condition.op == "$eq":
        return _equal(stored, condition.value)
    if condition.op == "$in":
        return any(_equal(stored, v) for v in condition.value)
    if not _numeric(stored):
        return False
    bound = condition.value
    assert isinstance(stored, int | float)
    if condition.op == "$gt":
        return stored > bound
    if condition.op == "$gte":
        return stored >= bound
    if condition.op == "$lt":
        return stored < bound
    return stored <= bound


def matches(conditions: Sequence[Condition], metadata: dict[str, Any]) -> bool:
    """Whether ``metadata`` satisfies every condition."""
    for condition in conditions:
        if condition.field not in metadata or not _holds(condition, metadata[condition.field]):
            return False
    return True


def unsatisfiable(conditions: Sequence[Condition]) -> bool:
    """True when some condition can match nothing (an empty membership list)."""
    return any(c.op == "$in" and not c.value for c in conditions)


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _milvus_condition(condition: Condition, column: str) -> str:
    ref = f"{column}[{json.dumps(condition.field)}]"
    if condition.op == "$eq":
        return f"{ref} == {_literal(condition.value)}"
    if condition.op == "$in":  # Milvus Lite accepts ``in`` on plain fields only
        return " or ".join(f"{ref} == {_literal(v)}" for v in condition.value)
    return f"{ref} {RANGE_OPS[condition.op]} {_literal(condition.value)}"


def to_milvus_expr(conditions: Sequence[Condition], column: str = "metadata") -> str:
    """A Milvus boolean expression over the JSON column ``column``; "" for no conditions."""
    return " and ".join(f"({_milvus_condition(c, column)})" for c in conditions)


CLI_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<|=)\s*(.*?)\s*$")
CLI_OPS = {"=": "$eq", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def _cli_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_cli_filters(entries: Sequence[str]) -> dict[str, Any]:
    """``["split=test", "label=[1,2]", "year>=2020"]`` → a filter dict; values read as JSON when
    they parse (numbers, booleans, lists), else as strings."""
    filter: dict[str, Any] = {}
    for entry in entries:
        found = CLI_CONDITION.match(entry)
        if not found:
            raise _bad(f"expected FIELD=VALUE or FIELD>=NUMBER (also >, <, <=), got {entry!r}")
        field, op, raw = found.groups()
        value = _cli_value(raw)
        if op == "=":
            if field in filter:
                raise _bad(f"field {field!r} given twice with '='")
            filter[field] = value
        else:
            existing = filter.setdefault(field, {})
            if not isinstance(existing, dict):
                raise _bad(f"field {field!r} has both '=' and a range")
            existing[CLI_OPS[op]] = value
    parse_filter(filter)
    return filter
