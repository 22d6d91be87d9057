"""The one override grammar of every command: ``--set section.key=value``, the value read as
YAML (``3``, ``0.5``, ``1e-3``, ``null``, ``[a, b]``, ``{dim: 64}``; anything else stays a
string)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import yaml

from omnifuse.errors import ConfigError

EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], the YAML value)."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or not all(parts):
        raise ConfigError(f"override {item!r}: expected section.key=value")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from None
    return parts, _exponent_number(parsed)


def _exponent_number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as text; a user writing it means the number."""
    if isinstance(value, str) and EXPONENT.fullmatch(value.strip()):
        return float(value)
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``section.key=value`` set (missing sections are created)."""
    out = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {where!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out
