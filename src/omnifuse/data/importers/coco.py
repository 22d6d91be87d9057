"""COCO captions (``captions_train2017.json``): one row per caption, the image referenced where
it lies (``image`` path, ``caption`` text, ``image_id``).

The JSON is read twice, one item at a time: first ``images`` (only an id → file name map is
kept), then ``annotations``, each written as it is read. Images are found in ``--images``, else
in ``<annotations folder>/../<train2017>`` (the name after ``captions_``) as COCO lays them out,
else beside the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnifuse.data.importers.jsonstream import json_items
from omnifuse.data.importers.registry import importers
from omnifuse.data.importers.sink import ManifestSink, RecordError
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError


@importers.register("coco-captions")
def import_coco_captions(path: Path, sink: ManifestSink) -> ManifestSchema:
    """COCO captions JSON: image + caption rows, images referenced."""
    images = sink.options.images or default_images(path, path.stem.rpartition("_")[2])
    files: dict[Any, str] = {}
    for image in json_items(path, "images", sink.notes):
        if isinstance(image, dict) and "id" in image and isinstance(image.get("file_name"), str):
            files[image["id"]] = image["file_name"]
    if not files:
        raise ConfigError(f"{path}: no 'images' with 'id' and 'file_name' (is it COCO captions?)")
    checked = ImageChecks(sink, images)
    for position, annotation in enumerate(json_items(path, "annotations", sink.notes), start=1):
        if sink.full(position):
            break
        key = _key(annotation)
        try:
            row = _row(position, annotation, files, checked)
        except RecordError as err:
            sink.skip(position, err, key)
            continue
        sink.write(position, row, key=key)
    return ManifestSchema(
        modalities={"image": "image", "caption": "text"},
        labels=[],
        split="split" if sink.options.split else None,
        extra=["image_id"],
    )


def _row(
    position: int, annotation: Any, files: dict[Any, str], checked: ImageChecks
) -> dict[str, Any]:
    if not isinstance(annotation, dict):
        raise RecordError(f"expected an object, got {type(annotation).__name__}")
    caption = annotation.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise RecordError("caption is missing or empty", "caption")
    image_id = annotation.get("image_id")
    if image_id not in files:
        raise RecordError(f"image_id {image_id!r} is not among the images", "image_id")
    row: dict[str, Any] = {
        "id": str(annotation.get("id", f"caption-{position}")),
        "image": checked.path(image_id, files[image_id]),
        "caption": caption.strip(),
        "image_id": image_id,
    }
    if checked.sink.options.split:
        row["split"] = checked.sink.options.split
    return row


class ImageChecks:
    """Each referenced image is checked once (COCO has five captions per image), and the
    outcome remembered by image id."""

    def __init__(self, sink: ManifestSink, folder: Path) -> None:
        self.sink = sink
        self.folder = folder
        self._done: dict[Any, str | RecordError] = {}

    def path(self, image_id: Any, file_name: str) -> str:
        outcome = self._done.get(image_id)
        if outcome is None:
            try:
                outcome = self.sink.reference(self.folder / file_name, "image", "image")
            except RecordError as err:
                outcome = err
            self._done[image_id] = outcome
        if isinstance(outcome, RecordError):
            raise outcome
        return outcome


def default_images(path: Path, subtype: str | None) -> Path:
    """COCO's layout (``annotations/x.json`` beside ``train2017/``), else the JSON's folder."""
    if subtype:
        for folder in (path.parent.parent / subtype, path.parent / subtype):
            if folder.is_dir():
                return folder
    return path.parent


def _key(annotation: Any) -> str | None:
    if isinstance(annotation, dict) and "id" in annotation:
        return f"annotation {annotation['id']}"
    return None
