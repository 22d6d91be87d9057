"""Time series (sensor tracks): multichannel, variable-length numbers with a sample rate.

A series is a float32 array ``(steps, channels)`` plus the rate it was sampled at (samples per
second), when the source says. Accepted forms:

- ``.npy`` (one array ``(T,)`` or ``(T, C)``) and ``.npz`` (an array ``values`` and an optional
  scalar ``rate``), read with ``allow_pickle=False`` and their header checked before the data: a
  pickled object array is refused, never unpickled, and an absurd shape is refused unread;
- ``.csv`` with a header row; a ``time``/``t``/``timestamp`` column (seconds) gives the rate and
  is not a channel;
- inline values (as a manifest may hold them): a list of numbers, a list of equal-length rows,
  a NumPy array, or ``{"values": ..., "rate": ...}``.

Every value must be finite: a NaN or an infinity is an :class:`~omnifuse.errors.InvalidValueError`
naming the step and channel, because a sensor gap should be explicit (a flag channel), not a
silent NaN that poisons a whole batch.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnifuse.errors import (
    CorruptInputError,
    EmptyInputError,
    InputTooLargeError,
    InvalidValueError,
    UnsupportedFormatError,
)
from omnifuse.io.limits import DecodeLimits, resolve_limits
from omnifuse.io.source import EncodedSource, check_encoded, is_encoded

MODALITY = "series"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
TIME_COLUMNS = ("time", "t", "timestamp", "seconds")


@dataclass(frozen=True)
class Series:
    """``values`` float32 ``(steps, channels)``; ``rate`` in samples per second, or None."""

    values: np.ndarray
    rate: float | None = None

    @property
    def steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])


def load_series(src: Any, *, limits: DecodeLimits | None = None, name: str | None = None) -> Series:
    """Decode and check one series from any accepted form (see the module docstring)."""
    limits = resolve_limits(limits)
    label = name or _label(src)
    if isinstance(src, Series):
        return _checked(src.values, src.rate, label, limits)
    if is_encoded(src):
        source = check_encoded(src, modality=MODALITY, limits=limits, name=name)
        return _from_file(source, limits)
    if isinstance(src, Mapping):
        if "values" not in src:
            raise InvalidValueError(
                "an inline series needs a 'values' key", source=label, modality=MODALITY
            )
        unknown = sorted(set(src) - {"values", "rate"})
        if unknown:
            raise InvalidValueError(
                f"unknown keys {unknown}; use 'values' and 'rate'", source=label, modality=MODALITY
            )
        return _checked(
            _as_array(src["values"], label), _rate(src.get("rate"), label), label, limits
        )
    if isinstance(src, (np.ndarray, list, tuple)):
        return _checked(_as_array(src, label), None, label, limits)
    raise UnsupportedFormatError(
        f"cannot read a series from {type(src).__name__}", source=label, modality=MODALITY
    )


def resample_series(values: np.ndarray, rate: float, target_rate: float) -> np.ndarray:
    """Linear interpolation of every channel onto the ``target_rate`` grid over the same span.

    Linear rather than polyphase: sensor rates are often fractional and tracks are smooth; a
    caller who needs anti-aliasing before a large downsampling filters first.
    """
    if math.isclose(rate, target_rate) or values.shape[0] < 2:
        return values
    duration = (values.shape[0] - 1) / rate
    steps = max(1, math.floor(duration * target_rate + 1e-9) + 1)
    old = np.arange(values.shape[0], dtype=np.float64) / rate
    new = np.arange(steps, dtype=np.float64) / target_rate
    columns = [np.interp(new, old, values[:, c]) for c in range(values.shape[1])]
    return np.stack(columns, axis=1).astype(np.float32)


def _label(src: Any) -> str:
    if isinstance(src, (str, bytes, bytearray, memoryview)) or hasattr(src, "__fspath__"):
        return str(src) if not isinstance(src, (bytes, bytearray, memoryview)) else "<bytes>"
    return f"<{type(src).__name__}>"


def _rate(value: Any, label: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValueError(
            f"rate must be a number, got {type(value).__name__}", source=label, modality=MODALITY
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidValueError(
            f"rate must be a positive finite number, got {value}", source=label, modality=MODALITY
        )
    return float(value)


def _as_array(values: Any, label: str) -> np.ndarray:
    """Inline values as an array; ragged rows and non-numbers are named, not guessed at."""
    if isinstance(values, np.ndarray):
        return values
    if not isinstance(values, (list, tuple)):
        raise InvalidValueError(
            f"values must be a list or array, got {type(values).__name__}",
            source=label,
            modality=MODALITY,
        )
    if values and isinstance(values[0], (list, tuple)):
        width = len(values[0])
        for step, row in enumerate(values):
            if not isinstance(row, (list, tuple)) or len(row) != width:
                found = len(row) if isinstance(row, (list, tuple)) else type(row).__name__
                raise InvalidValueError(
                    f"ragged series: step {step} has {found} values, step 0 has {width}",
                    source=label,
                    modality=MODALITY,
                )
    for item in _flat(values):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise InvalidValueError(
                f"series values must be numbers, found {type(item).__name__} {item!r:.40}",
                source=label,
                modality=MODALITY,
            )
    return np.asarray(values, dtype=np.float64)


def _flat(values: Sequence[Any]) -> Sequence[Any]:
    if values and isinstance(values[0], (list, tuple)):
        return [item for row in values for item in row]
    return values


def _checked(values: np.ndarray, rate: float | None, label: str, limits: DecodeLimits) -> Series:
    """Shape, dtype, size and finiteness checks; returns float32 ``(steps, channels)``."""
    if values.dtype == object or values.dtype.kind not in "biuf":
        raise InvalidValueError(
            f"series values must be numeric, got dtype {values.dtype}",
            source=label,
            modality=MODALITY,
        )
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise InvalidValueError(
            f"expected (steps, channels), got shape {tuple(values.shape)}",
            source=label,
            modality=MODALITY,
        )
    _check_shape(tuple(values.shape), label, limits)
    values = values.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        step, channel = (int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(values[step, channel]) else "an infinity"
        raise InvalidValueError(
            f"{int(bad.sum())} non-finite value(s); first: {what} at step {step}, channel "
            f"{channel} (mark sensor gaps with a flag channel instead)",
            source=label,
            modality=MODALITY,
        )
    return Series(np.ascontiguousarray(values), rate)


def _check_shape(shape: tuple[int, ...], label: str, limits: DecodeLimits) -> None:
    if len(shape) == 0 or shape[0] == 0 or (len(shape) > 1 and shape[1] == 0):
        raise EmptyInputError(f"has no values (shape {shape})", source=label, modality=MODALITY)
    if shape[0] > limits.max_series_steps:
        raise InputTooLargeError(
            f"has {shape[0]} steps, over the limit of {limits.max_series_steps}",
            source=label,
            modality=MODALITY,
        )
    if len(shape) > 1 and shape[1] > limits.max_series_channels:
        raise InputTooLargeError(
            f"has {shape[1]} channels, over the limit of {limits.max_series_channels}",
            source=label,
            modality=MODALITY,
        )


def _from_file(source: EncodedSource, limits: DecodeLimits) -> Series:
    with source.open() as f:
        head = f.read(8)
    if head.startswith(NPY_MAGIC):
        return _checked(_read_npy(source.read(), source.label, limits), None, source.label, limits)
    if head.startswith(ZIP_MAGIC):
        return _read_npz(source, limits)
    return _read_csv(source, limits)


def _read_npy(data: bytes, label: str, limits: DecodeLimits) -> np.ndarray:
    """One ``.npy`` array; the header (dtype, shape) is checked before any data is read."""
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(buffer)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(buffer)
    except ValueError as err:
        raise CorruptInputError(
            f"bad .npy header: {err}", source=label, modality=MODALITY
        ) from None
    if dtype.hasobject:
        raise UnsupportedFormatError(
            "holds pickled Python objects, which are never loaded; save a numeric array",
            source=label,
            modality=MODALITY,
        )
    if dtype.kind not in "biuf":
        raise InvalidValueError(
            f"series values must be numeric, got dtype {dtype}", source=label, modality=MODALITY
        )
    if shape:  # a 0-d array (an .npz's rate) has nothing to bound
        _check_shape(tuple(int(n) for n in shape), label, limits)
    buffer.seek(0)
    try:
        return np.asarray(np.load(buffer, allow_pickle=False))
    except (ValueError, EOFError, OSError) as err:
        raise CorruptInputError(
            f"truncated or bad .npy: {err}", source=label, modality=MODALITY
        ) from None


def _read_npz(source: EncodedSource, limits: DecodeLimits) -> Series:
    label = source.label
    try:
        with zipfile.ZipFile(io.BytesIO(source.read())) as archive:
            names = {n.removesuffix(".npy"): n for n in archive.namelist()}
            if "values" not in names:
                raise InvalidValueError(
                    f"an .npz series needs an array 'values'; found {sorted(names)}",
                    source=label,
                    modality=MODALITY,
                )
            values = _read_npy(archive.read(names["values"]), label, limits)
            rate = None
            if "rate" in names:
                rate = _rate(_read_npy(archive.read(names["rate"]), label, limits), label)
    except (zipfile.BadZipFile, EOFError) as err:
        raise CorruptInputError(
            f"bad .npz archive: {err}", source=label, modality=MODALITY
        ) from None
    return _checked(values, rate, label, limits)


def _read_csv(source: EncodedSource, limits: DecodeLimits) -> Series:
    label = source.label
    try:
        text = source.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsupportedFormatError(
            "is not .npy, .npz or UTF-8 CSV", source=label, modality=MODALITY
        ) from None
    rows = [r for r in csv.reader(text.splitlines()) if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise EmptyInputError(
            "a CSV series needs a header and a row", source=label, modality=MODALITY
        )
    header = [h.strip().lower() for h in rows[0]]
    _check_shape((len(rows) - 1, len(header)), label, limits)
    table = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise InvalidValueError(
                f"ragged CSV: row {i + 2} has {len(row)} fields, the header {len(header)}",
                source=label,
                modality=MODALITY,
            )
        for j, cell in enumerate(row):
            try:
                table[i, j] = float(cell)
            except ValueError:
                raise InvalidValueError(
                    f"row {i + 2}, column {rows[0][j]!r}: {cell!r:.40} is not a number",
                    source=label,
                    modality=MODALITY,
                ) from None
    time_index = next((header.index(t) for t in TIME_COLUMNS if t in header), None)
    rate = None
    if time_index is not None:
        rate = _rate_from_times(table[:, time_index], label)
        table = np.delete(table, time_index, axis=1)
    return _checked(table, rate, label, limits)


def _rate_from_times(times: np.ndarray, label: str) -> float | None:
    if len(times) < 2:
        return None
    steps = np.diff(times)
    if not np.isfinite(steps).all() or (steps <= 0).any():
        raise InvalidValueError(
            "the time column must increase strictly", source=label, modality=MODALITY
        )
    return _rate(float(1.0 / np.median(steps)), label)
