"""load_text on good inputs: decoding, normalisation and the length limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnifuse.errors import InputTooLargeError
from omnifuse.io import DecodeLimits, load_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain words", "plain words"),
        ("Cafe\u0301", "Caf\u00e9"),
        ("a  \t b", "a b"),
        ("a\u00a0\u2003b", "a b"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\n\n\n b", "a\nb"),
        ("first line \n  second", "first line\nsecond"),
        ("a\u2028b\x0cc\x85d\x1ee", "a\nb\nc\nd\ne"),
        ("nul\x00bell\x07esc\x1bdel\x7fc1\x9fend", "nulbellescdelc1end"),
        ("  \n padded \t\n ", "padded"),
        ("tab\tkept as space", "tab kept as space"),
        ("emoji \U0001f600 stays", "emoji \U0001f600 stays"),
    ],
)
def test_normalisation(raw: str, expected: str) -> None:
    assert load_text(raw) == expected


def test_str_is_the_text_even_when_it_looks_like_a_path() -> None:
    assert load_text("/etc/passwd") == "/etc/passwd"


def test_bytes_are_utf8_and_the_bom_is_stripped() -> None:
    assert load_text("\ufeffh\u00e9llo".encode()) == "h\u00e9llo"
    assert load_text(bytearray("\u4e2d\u6587".encode())) == "\u4e2d\u6587"
    assert load_text(memoryview(b"ok")) == "ok"


def test_path_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert load_text(path) == "line one\nline two"


def test_normalize_false_keeps_the_text_as_decoded() -> None:
    raw = "  Cafe\u0301\r\n\tx  "
    assert load_text(raw, normalize=False) == raw
    assert load_text(b"\xef\xbb\xbf a \n", normalize=False) == " a \n"


def test_length_limit_is_inclusive_and_counts_characters() -> None:
    limits = DecodeLimits(max_text_chars=5)
    assert load_text("\u00e9" * 5, limits=limits) == "\u00e9" * 5
    assert load_text(("\u00e9" * 5).encode(), limits=limits) == "\u00e9" * 5
    with pytest.raises(InputTooLargeError, match="6 characters"):
        load_text("abcdef", limits=limits)
    with pytest.raises(InputTooLargeError, match="over the limit of 5 characters"):
        load_text(b"x" * 100, limits=limits)
