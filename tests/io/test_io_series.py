"""Series decoding: every accepted form, resampling, and every bad input as a typed error."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from omnifuse.errors import (
    CorruptInputError,
    EmptyInputError,
    InputNotFoundError,
    InputTooLargeError,
    InvalidValueError,
    UnsupportedFormatError,
)
from omnifuse.io import DecodeLimits, load_series, resample_series


def _track(steps: int = 12, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(steps, channels)).astype(np.float32)


def test_npy_npz_csv_and_inline_forms_agree(tmp_path: Path) -> None:
    values = _track()
    np.save(tmp_path / "a.npy", values)
    np.savez(tmp_path / "a.npz", values=values, rate=np.float64(25.0))
    times = np.arange(len(values)) / 25.0
    header = "time,x,y,z\n"
    rows = "".join(
        f"{t!r},{a!r},{b!r},{c!r}\n"
        for t, (a, b, c) in zip(times.tolist(), values.tolist(), strict=True)
    )
    (tmp_path / "a.csv").write_text(header + rows)
    from_npy = load_series(tmp_path / "a.npy")
    from_npz = load_series(str(tmp_path / "a.npz"))
    from_csv = load_series(tmp_path / "a.csv")
    inline = load_series({"values": values.tolist(), "rate": 25})
    assert from_npy.rate is None and from_npz.rate == 25.0 and inline.rate == 25.0
    assert from_csv.rate == pytest.approx(25.0) and from_csv.channels == 3
    for series in (from_npy, from_npz, from_csv, inline):
        np.testing.assert_allclose(series.values, values, rtol=1e-6)
        assert series.values.dtype == np.float32
    one_channel = load_series([1, 2, 3])
    assert one_channel.values.shape == (3, 1)


def test_resampling_keeps_the_span_and_interpolates() -> None:
    ramp = np.arange(11, dtype=np.float32)[:, None]  # 1 s at 10 Hz
    up = resample_series(ramp, 10.0, 20.0)
    assert up.shape == (21, 1)
    np.testing.assert_allclose(up[:, 0], np.arange(21) / 2, atol=1e-6)
    down = resample_series(ramp, 10.0, 5.0)
    np.testing.assert_allclose(down[:, 0], [0, 2, 4, 6, 8, 10], atol=1e-6)


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        ([[1.0, 2.0], [3.0]], InvalidValueError, "ragged"),
        ([[1.0, float("nan")]], InvalidValueError, "NaN at step 0, channel 1"),
        ([1.0, float("inf")], InvalidValueError, "infinity"),
        (["a", "b"], InvalidValueError, "must be numbers"),
        (np.array(["1", "2"]), InvalidValueError, "numeric"),
        (np.zeros((2, 2, 2)), InvalidValueError, "(steps, channels)"),
        ([], EmptyInputError, "no values"),
        ({"values": [1.0], "rate": -3}, InvalidValueError, "positive"),
        ({"values": [1.0], "hz": 3}, InvalidValueError, "unknown keys"),
        ({"rate": 3}, InvalidValueError, "'values'"),
        (3.5, UnsupportedFormatError, "float"),
    ],
)
def test_bad_inline_series(raw: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=None) as caught:
        load_series(raw)
    assert words in str(caught.value)


def test_absurd_length_is_refused_from_the_header_unread(tmp_path: Path) -> None:
    path = tmp_path / "long.npy"
    np.save(path, np.zeros((5000, 2), dtype=np.float32))
    with pytest.raises(InputTooLargeError, match="5000 steps"):
        load_series(path, limits=DecodeLimits(max_series_steps=1000))
    # a header announcing 10**12 steps is refused before any data is read (there is none)
    fake = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        fake, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 1)}
    )
    (tmp_path / "huge.npy").write_bytes(fake.getvalue())
    with pytest.raises(InputTooLargeError):
        load_series(tmp_path / "huge.npy")


def test_pickled_npy_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedFormatError, match="pickled"):
        load_series(path)
    raw_pickle = tmp_path / "plain.pkl"
    raw_pickle.write_bytes(pickle.dumps([1.0, 2.0]))
    with pytest.raises(UnsupportedFormatError):
        load_series(raw_pickle)


def test_corrupt_truncated_missing_and_empty_files(tmp_path: Path) -> None:
    good = tmp_path / "good.npy"
    np.save(good, _track(100))
    truncated = tmp_path / "cut.npy"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CorruptInputError):
        load_series(truncated)
    np.savez(tmp_path / "other.npz", samples=_track())
    with pytest.raises(InvalidValueError, match="'values'"):
        load_series(tmp_path / "other.npz")
    broken_zip = tmp_path / "broken.npz"
    broken_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(CorruptInputError):
        load_series(broken_zip)
    with pytest.raises(InputNotFoundError):
        load_series(tmp_path / "absent.npy")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(EmptyInputError):
        load_series(tmp_path / "empty.csv")


def test_bad_csv_cells_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,oops\n")
    with pytest.raises(InvalidValueError, match=r"row 3, column 'y'"):
        load_series(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n3\n")
    with pytest.raises(InvalidValueError, match="ragged"):
        load_series(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("t,x\n0,1\n0,2\n")
    with pytest.raises(InvalidValueError, match="increase"):
        load_series(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UnsupportedFormatError):
        load_series(tmp_path / "d.csv")
