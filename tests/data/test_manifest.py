"""Manifest reading and line-by-line validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnifuse.data.manifest import ManifestIssue, check_manifest, load_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.errors import EmptyInputError, InputNotFoundError, ManifestError

SCHEMA = ManifestSchema(
    modalities={"text": "text", "image": "image"}, labels=["label"], split="split", id="id"
)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    (tmp_path / "folder").mkdir()
    return tmp_path


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _bad_jsonl(root: Path) -> Path:
    good = {"id": "a", "split": "train", "text": "a cat", "image": "ok.png", "label": "cat"}
    lines = [
        json.dumps(good),  # 1 fine
        '{"id": "b", "split": "train", "text": "x",',  # 2 truncated JSON
        json.dumps(["not", "an", "object"]),  # 3 wrong type of line
        json.dumps({**good, "id": "c", "image": "missing.png"}),  # 4 file not found
        json.dumps({**good, "id": "d", "split": "holdout"}),  # 5 bad split
        json.dumps({**good, "id": "e", "label": ""}),  # 6 empty label
        json.dumps({**good, "id": "f", "text": None, "image": None}),  # 7 no modality
        json.dumps({**good, "id": "g", "text": 42}),  # 8 text of the wrong type
        json.dumps({**good, "id": "a"}),  # 9 duplicate id
        json.dumps({**good, "id": "h", "image": "folder"}),  # 10 a folder, not a file
        "",  # 11 blank lines are ignored
        json.dumps({**good, "id": "i", "image": None}),  # 12 fine: the image is missing
    ]
    return _write_lines(root / "data.jsonl", lines)


def test_every_bad_line_is_reported_with_line_and_column(media: Path) -> None:
    path = _bad_jsonl(media)
    issues = check_manifest(path, SCHEMA)
    found = {(i.line, i.column) for i in issues}
    assert found == {
        (2, None),
        (3, None),
        (4, "image"),
        (5, "split"),
        (6, "label"),
        (7, None),
        (8, "text"),
        (9, "id"),
        (10, "image"),
    }
    reasons = {i.line: i.reason for i in issues}
    assert "invalid JSON" in reasons[2]
    assert "expected a JSON object" in reasons[3]
    assert "file not found: missing.png" in reasons[4]
    assert "'holdout'" in reasons[5]
    assert "duplicate id 'a' (first on line 1)" in reasons[9]
    assert str(ManifestIssue(4, "image", "x")) == "line 4, column 'image': x"


def test_loading_skips_bad_lines_and_resolves_paths(media: Path) -> None:
    manifest = load_manifest(_bad_jsonl(media), SCHEMA)
    assert [s["id"] for s in manifest.samples] == ["a", "i"]
    assert manifest.skipped_lines == 9
    first = manifest.samples[0]
    assert first["image"] == str(media / "ok.png")
    assert "image" not in manifest.samples[1]  # a missing modality is simply absent
    assert manifest.split_counts() == {"train": 2}


def test_strict_loading_raises_with_every_issue(media: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(_bad_jsonl(media), SCHEMA, strict=True)
    assert len(info.value.issues) == 9
    assert "line 4, column 'image': file not found" in str(info.value)


def test_decode_finds_corrupt_media(media: Path) -> None:
    row = {"id": "z", "split": "test", "text": "t", "image": "broken.png", "label": "x"}
    path = _write_lines(media / "m.jsonl", [json.dumps(row)])
    assert check_manifest(path, SCHEMA) == []
    deep = check_manifest(path, SCHEMA, decode=True)
    assert len(deep) == 1 and deep[0].column == "image"
    assert "CorruptInputError" in deep[0].reason or "UnsupportedFormatError" in deep[0].reason


def test_csv_manifest_with_inferred_schema(media: Path) -> None:
    path = _write_lines(
        media / "m.csv",
        [
            "id,split,text,image,label",
            "1,train,a dog,ok.png,dog",
            "2,val,too,many,fields,here",
            "3,test,,ok.png,cat",
            "4,test,,,cat",
        ],
    )
    manifest = load_manifest(path)
    assert manifest.schema.modalities == {"text": "text", "image": "image"}
    assert manifest.schema.labels == ["label"]
    assert [s["id"] for s in manifest.samples] == ["1", "3"]
    assert {(i.line, i.column) for i in manifest.issues} == {(3, None), (5, None)}
    assert "expected 5 fields, found 6" in manifest.issues[0].reason


def test_schema_sidecar_round_trips(media: Path) -> None:
    schema = ManifestSchema(modalities={"q": "text", "pic": "image"}, labels=["answer"])
    rows = [{"id": "1", "split": "train", "q": "what?", "pic": "ok.png", "answer": "yes"}]
    path = media / "vqa.jsonl"
    assert write_manifest(path, rows, schema) == 1
    manifest = load_manifest(path)
    assert manifest.schema == schema
    assert manifest.samples[0]["pic"] == str(media / "ok.png")


def test_non_utf8_line_is_reported(media: Path) -> None:
    path = media / "m.jsonl"
    path.write_bytes(b'{"id": "1", "text": "caf\xe9", "split": "train", "label": "x"}\n')
    issues = check_manifest(path, SCHEMA)
    assert issues[0].line == 1 and "not UTF-8" in issues[0].reason


def test_missing_empty_and_wrong_type_manifests(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_manifest(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(EmptyInputError):
        load_manifest(empty)
    other = tmp_path / "data.txt"
    other.write_text("x")
    with pytest.raises(ManifestError, match="unsupported manifest type"):
        load_manifest(other)


def test_check_files_false_trusts_paths_of_moved_media(media: Path) -> None:
    row = {"id": "1", "split": "train", "text": "t", "image": "gone.png", "label": "x"}
    path = _write_lines(media / "m.jsonl", [json.dumps(row)])
    assert len(load_manifest(path, SCHEMA)) == 0
    trusted = load_manifest(path, SCHEMA, check_files=False)
    assert trusted.samples[0]["image"] == str(media / "gone.png")
