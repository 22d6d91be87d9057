"""Table records: one row of a ``tabular`` modality, checked field by field.

A record is ``{column: value}`` holding every column the schema declares for the modality
(:attr:`~omnifuse.data.schema.ManifestSchema.tables`). Numeric fields take numbers or numeric
strings (CSV cells); ``None``, ``""`` and NaN mean *missing*, which the tabular encoder flags
rather than imputes silently. Categorical fields take strings, integers or booleans (compared as
text); ``None`` and ``""`` mean missing. A declared column absent from the record, an infinity,
or a value of the wrong type is an :class:`~omnifuse.errors.InvalidValueError` naming the column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnifuse.errors import InvalidValueError

MODALITY = "tabular"
MISSING = (None, "")


@dataclass(frozen=True)
class Record:
    """Checked fields: numbers (None = missing) and categories as text (None = missing)."""

    numbers: dict[str, float | None]
    categories: dict[str, str | None]


def load_record(
    raw: Any,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    name: str | None = None,
) -> Record:
    """Check one record against its declared columns; see the module docstring for the rules."""
    label = name or "<record>"
    if not isinstance(raw, Mapping):
        raise InvalidValueError(
            f"a table record must be a mapping of column to value, got {type(raw).__name__}",
            source=label,
            modality=MODALITY,
        )
    absent = [c for c in (*numeric, *categorical) if c not in raw]
    if absent:
        raise InvalidValueError(
            f"missing declared column(s) {absent}", source=label, modality=MODALITY
        )
    numbers = {c: _number(raw[c], c, label) for c in numeric}
    categories = {c: _category(raw[c], c, label) for c in categorical}
    return Record(numbers, categories)


def _number(value: Any, column: str, label: str) -> float | None:
    if value in MISSING:
        return None
    if isinstance(value, bool):
        raise InvalidValueError(
            f"column {column!r}: a boolean is not a number (declare it categorical)",
            source=label,
            modality=MODALITY,
        )
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidValueError(
                f"column {column!r}: {value!r:.40} is not a number",
                source=label,
                modality=MODALITY,
            ) from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise InvalidValueError(
            f"column {column!r}: expected a number, got {type(value).__name__}",
            source=label,
            modality=MODALITY,
        )
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise InvalidValueError(
            f"column {column!r}: {number} is not a usable number",
            source=label,
            modality=MODALITY,
        )
    return number


def _category(value: Any, column: str, label: str) -> str | None:
    if value in MISSING:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise InvalidValueError(
        f"column {column!r}: expected a category (text or integer), got {type(value).__name__}",
        source=label,
        modality=MODALITY,
    )
