"""``omnifuse data import coco-captions`` and ``vqa-v2``: JSON files and image folders laid out
as COCO ships them become manifests that ``omnifuse data check --decode`` passes, with images
referenced where they lie; bad annotations are skipped and reported by their position."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from importer_kit import check_decodes, colour_of, image_bytes, near, rows, run_import, schema

from omnifuse.data.importers import ImportOptions, import_source

CAPTIONS = [
    {"id": 10, "image_id": 1, "caption": "A red square."},
    {"id": 11, "image_id": 1, "caption": " A small red block "},
    {"id": 12, "image_id": 2, "caption": "A blue square on nothing."},
    {"id": 13, "image_id": 99, "caption": "An image nobody listed."},
    {"id": 14, "image_id": 3, "caption": "Its file is missing."},
    {"id": 15, "image_id": 2, "caption": ""},
    {"id": 16, "image_id": 4, "caption": "A green square."},
]


def _coco(root: Path) -> Path:
    """COCO's layout: annotations/captions_train2017.json beside train2017/."""
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    names = {1: "red", 2: "blue", 4: "green"}
    for image_id, colour in names.items():
        (root / "train2017" / f"{image_id:012d}.png").write_bytes(image_bytes(colour))
    images = [{"id": i, "file_name": f"{i:012d}.png", "width": 16} for i in (1, 2, 3, 4)]
    path = root / "annotations" / "captions_train2017.json"
    document = {"info": {"year": 2017}, "images": images, "annotations": CAPTIONS}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_coco_captions_round_trip(tmp_path: Path) -> None:
    source = _coco(tmp_path / "coco")
    out = tmp_path / "imported"
    output = run_import("coco-captions", str(source), "--out", str(out), "--split", "train")
    assert "wrote 4 row(s)" in output and "3 record(s) skipped" in output
    manifest = out / "manifest.jsonl"
    check_decodes(manifest)
    written = rows(manifest)
    assert [r["id"] for r in written] == ["10", "11", "12", "16"]
    assert [r["caption"] for r in written] == [
        "A red square.",
        "A small red block",
        "A blue square on nothing.",
        "A green square.",
    ]
    assert {r["split"] for r in written} == {"train"}
    for row, colour in zip(written, ("red", "red", "blue", "green"), strict=True):
        assert not Path(row["image"]).is_absolute()  # relative to the manifest
        assert near(colour_of(out / row["image"]), colour)
    described = schema(manifest)
    assert described["modalities"] == {"image": "image", "caption": "text"}
    assert described["split"] == "split"


def test_coco_bad_annotations_are_reported_by_position(tmp_path: Path) -> None:
    source = _coco(tmp_path / "coco")
    report = import_source("coco-captions", source, tmp_path / "out")
    found = [(i.position, i.column, i.key) for i in report.issues]
    assert found == [
        (4, "image_id", "annotation 13"),
        (5, "image", "annotation 14"),
        (6, "caption", "annotation 15"),
    ]
    assert "file not found" in report.issues[1].reason
    assert str(report.issues[0]).startswith("record 4 (annotation 13), column 'image_id'")
    assert report.rows == 4 and report.media_files == 0  # images stay where they are
    assert schema(report.manifest)["split"] is None  # no --split: no split column


def test_coco_without_ijson_reads_the_file_whole_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _coco(tmp_path / "coco")
    streamed = import_source("coco-captions", source, tmp_path / "a")
    monkeypatch.setitem(sys.modules, "ijson", None)  # as if it were not installed
    whole = import_source("coco-captions", source, tmp_path / "b")
    assert rows(whole.manifest) == rows(streamed.manifest)
    assert whole.issues == streamed.issues
    assert any("read whole" in note for note in whole.notes)
    assert not streamed.notes


def test_coco_limit_stops_early(tmp_path: Path) -> None:
    source = _coco(tmp_path / "coco")
    report = import_source("coco-captions", source, tmp_path / "out", ImportOptions(limit=2))
    assert [r["id"] for r in rows(report.manifest)] == ["10", "11"]


QUESTIONS = [
    {"image_id": 1, "question": "What colour is the square?", "question_id": 1000},
    {"image_id": 2, "question": "Is the square blue?", "question_id": 2000},
    {"image_id": 1, "question": "Nobody answered this one?", "question_id": 1001},
    {"image_id": 7, "question": "Where is its image?", "question_id": 7000},
    {"image_id": 2, "question": "What colour is it?", "question_id": 2001},
]


def _answer(question_id: int, image_id: int, answer: str, kind: str) -> dict[str, object]:
    given = [{"answer": answer, "answer_confidence": "yes", "answer_id": i} for i in range(1, 4)]
    return {
        "question_id": question_id,
        "image_id": image_id,
        "multiple_choice_answer": answer,
        "answers": given,
        "question_type": "what color" if kind == "other" else "is the",
        "answer_type": kind,
    }


def _vqa(root: Path) -> tuple[Path, Path]:
    (root / "train2014").mkdir(parents=True)
    for image_id, colour in {1: "red", 2: "blue"}.items():
        name = f"COCO_train2014_{image_id:012d}.jpg"
        (root / "train2014" / name).write_bytes(image_bytes(colour, "JPEG"))
    questions = root / "v2_OpenEnded_mscoco_train2014_questions.json"
    questions.write_text(
        json.dumps(
            {"task_type": "Open-Ended", "data_subtype": "train2014", "questions": QUESTIONS}
        ),
        encoding="utf-8",
    )
    annotations = root / "v2_mscoco_train2014_annotations.json"
    answers = [
        _answer(1000, 1, "red", "other"),
        _answer(2000, 2, "yes", "yes/no"),
        _answer(7000, 7, "nowhere", "other"),
        _answer(2001, 2, "blue", "other"),
    ]
    annotations.write_text(json.dumps({"annotations": answers}), encoding="utf-8")
    return questions, annotations


def test_vqa_v2_round_trip(tmp_path: Path) -> None:
    questions, annotations = _vqa(tmp_path / "vqa")
    out = tmp_path / "imported"
    output = run_import(
        "vqa-v2", str(questions), "--annotations", str(annotations), "--out", str(out)
    )
    assert "wrote 3 row(s)" in output and "2 record(s) skipped" in output
    manifest = out / "manifest.jsonl"
    check_decodes(manifest)
    written = rows(manifest)
    assert [(r["id"], r["answer"]) for r in written] == [
        ("1000", "red"),
        ("2000", "yes"),
        ("2001", "blue"),
    ]
    assert written[0]["answers"] == ["red"] * 3
    assert written[1]["answer_type"] == "yes/no"
    assert near(colour_of(out / written[2]["image"]), "blue")
    described = schema(manifest)
    assert described["modalities"] == {"image": "image", "question": "text"}
    assert described["labels"] == ["answer"]


def test_vqa_v2_bad_questions_are_reported_by_position(tmp_path: Path) -> None:
    questions, annotations = _vqa(tmp_path / "vqa")
    options = ImportOptions(annotations=annotations)
    report = import_source("vqa-v2", questions, tmp_path / "out", options)
    assert [(i.position, i.column, i.key) for i in report.issues] == [
        (3, "answer", "question 1001"),
        (4, "image", "question 7000"),
    ]
    assert "no annotation" in report.issues[0].reason


def test_vqa_v2_questions_alone_have_no_label(tmp_path: Path) -> None:
    questions, _ = _vqa(tmp_path / "vqa")
    report = import_source("vqa-v2", questions, tmp_path / "out", ImportOptions(split="test"))
    assert report.rows == 4 and schema(report.manifest)["labels"] == []
    assert {r["split"] for r in rows(report.manifest)} == {"test"}
    check_decodes(report.manifest)
