"""VQA v2: the questions JSON (``v2_OpenEnded_mscoco_train2014_questions.json``), with its
annotations JSON (``--annotations``) for the answers, as rows of ``image`` (referenced),
``question`` and the label ``answer`` (the most common of the ten human answers), with
``answers``, ``question_type``, ``answer_type`` and ``image_id`` beside them.

The questions stream one at a time; the annotations are read first, one at a time, into a map
from question id to its answers (strings interned: answers repeat), which is what a join of
two files needs. Image files are named by ``--image-name`` (default
``COCO_{subtype}_{image_id:012d}.jpg``, ``subtype`` from the questions file) in ``--images``
(default as for COCO captions: ``<folder>/../<subtype>``, else beside the JSON).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse.data.importers.coco import ImageChecks, default_images
from omnifuse.data.importers.jsonstream import json_items, json_value
from omnifuse.data.importers.registry import importers
from omnifuse.data.importers.sink import ManifestSink, RecordError
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError

IMAGE_NAME = "COCO_{subtype}_{image_id:012d}.jpg"


@dataclass(frozen=True)
class Answers:
    answer: str
    answers: tuple[str, ...]
    question_type: str | None
    answer_type: str | None


@importers.register("vqa-v2")
def import_vqa_v2(path: Path, sink: ManifestSink) -> ManifestSchema:
    """VQA v2 questions (+ annotations): image + question rows, answers as labels."""
    options = sink.options
    subtype = json_value(path, "data_subtype")
    pattern = options.image_name or IMAGE_NAME
    if "{subtype" in pattern and not isinstance(subtype, str):
        raise ConfigError(f"{path} has no data_subtype: give the file pattern with --image-name")
    images = options.images or default_images(path, subtype if isinstance(subtype, str) else None)
    answers = _answers(options.annotations, sink) if options.annotations else None
    checked = ImageChecks(sink, images)
    for position, question in enumerate(json_items(path, "questions", sink.notes), start=1):
        if sink.full(position):
            break
        key = _key(question)
        try:
            row = _row(question, answers, checked, pattern, subtype)
        except RecordError as err:
            sink.skip(position, err, key)
            continue
        sink.write(position, row, key=key)
    extra = ["image_id"]
    if answers is not None:
        extra += ["answers", "question_type", "answer_type"]
    return ManifestSchema(
        modalities={"image": "image", "question": "text"},
        labels=["answer"] if answers is not None else [],
        split="split" if options.split else None,
        extra=extra,
    )


def _answers(path: Path, sink: ManifestSink) -> dict[Any, Answers]:
    found: dict[Any, Answers] = {}
    for item in json_items(path, "annotations", sink.notes):
        if not isinstance(item, dict) or "question_id" not in item:
            continue
        given = [
            sys.intern(a["answer"])
            for a in item.get("answers") or []
            if isinstance(a, dict) and isinstance(a.get("answer"), str)
        ]
        best = item.get("multiple_choice_answer")
        found[item["question_id"]] = Answers(
            sys.intern(best) if isinstance(best, str) else "",
            tuple(given),
            _interned(item.get("question_type")),
            _interned(item.get("answer_type")),
        )
    if not found:
        raise ConfigError(f"{path}: no 'annotations' with a question_id (is it VQA v2?)")
    return found


def _row(
    question: Any,
    answers: dict[Any, Answers] | None,
    checked: ImageChecks,
    pattern: str,
    subtype: Any,
) -> dict[str, Any]:
    if not isinstance(question, dict):
        raise RecordError(f"expected an object, got {type(question).__name__}")
    text, image_id = question.get("question"), question.get("image_id")
    if not isinstance(text, str) or not text.strip():
        raise RecordError("question is missing or empty", "question")
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise RecordError(f"image_id {image_id!r} is not an integer", "image_id")
    qid = question.get("question_id")
    if qid is None:
        raise RecordError("question_id is missing", "question_id")
    try:
        file_name = pattern.format(subtype=subtype, image_id=image_id)
    except (KeyError, ValueError, IndexError) as err:
        raise ConfigError(f"--image-name {pattern!r}: {err}") from None
    row: dict[str, Any] = {
        "id": str(qid),
        "image": checked.path(image_id, file_name),
        "question": text.strip(),
        "image_id": image_id,
    }
    if answers is not None:
        found = answers.get(qid)
        if found is None:
            raise RecordError(f"no annotation for question_id {qid}", "answer")
        if not found.answer.strip():
            raise RecordError("the annotation has no multiple_choice_answer", "answer")
        row.update(
            answer=found.answer,
            answers=list(found.answers),
            question_type=found.question_type,
            answer_type=found.answer_type,
        )
    if checked.sink.options.split:
        row["split"] = checked.sink.options.split
    return row


def _interned(value: Any) -> str | None:
    return sys.intern(value) if isinstance(value, str) else None


def _key(question: Any) -> str | None:
    if isinstance(question, dict) and "question_id" in question:
        return f"question {question['question_id']}"
    return None
