"""``omnifuse data import parquet``, ``webdataset`` and ``hf-datasets``: files written here with
each format's own writer (pyarrow, webdataset's TarWriter, ``datasets``' save_to_disk) become
manifests with their media bytes extracted to files, which ``omnifuse data check --decode``
passes; bad records are skipped and reported by their position."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from importer_kit import (
    check_decodes,
    colour_of,
    image_bytes,
    near,
    rows,
    run_import,
    schema,
    wav_bytes,
)

from omnifuse.data.importers import ImportOptions, import_source
from omnifuse.errors import ConfigError


def _table(colours: list[str], captions: list[str], broken: int | None = None) -> pa.Table:
    images = [image_bytes(c) for c in colours]
    if broken is not None:
        images[broken] = b"these bytes are no image"
    return pa.table(
        {
            "image": pa.array(images, pa.binary()),
            "caption": captions,
            "label": colours,
            "score": [0.5 * i for i in range(len(colours))],
            "checksum": pa.array([b"\x00\x01\x02"] * len(colours), pa.binary()),
        }
    )


def test_parquet_round_trip_with_splits_from_file_names(tmp_path: Path) -> None:
    source = tmp_path / "parquet"
    source.mkdir()
    train = _table(["red", "blue", "green", "red"], ["one", "two", "three", "four"], broken=2)
    pq.write_table(train, source / "train-00000-of-00001.parquet", row_group_size=2)
    pq.write_table(_table(["blue"], ["five"]), source / "test-00000-of-00001.parquet")
    out = tmp_path / "imported"
    output = run_import("parquet", str(source), "--out", str(out))
    assert "wrote 4 row(s), 4 media file(s)" in output and "1 record(s) skipped" in output
    manifest = out / "manifest.jsonl"
    check_decodes(manifest)
    written = rows(manifest)
    assert [(r["caption"], r["label"], r["split"]) for r in written] == [
        ("five", "blue", "test"),  # files in name order
        ("one", "red", "train"),
        ("two", "blue", "train"),
        ("four", "red", "train"),
    ]
    for row in written:
        assert row["image"].startswith("media/image/")
        assert near(colour_of(out / row["image"]), row["label"])
        assert "checksum" not in row  # bytes that are no media are left out
    described = schema(manifest)
    assert described["modalities"] == {"image": "image", "caption": "text"}
    assert described["labels"] == ["label"] and described["extra"] == ["score"]


def test_parquet_bad_rows_are_reported_by_position(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(_table(["red", "blue", "green"], ["a", "b", "c"], broken=1), path)
    report = import_source("parquet", path, tmp_path / "out", ImportOptions(split="val"))
    assert [(i.position, i.column, i.key) for i in report.issues] == [
        (2, "image", "data.parquet row 1")
    ]
    assert "no known media format" in report.issues[0].reason
    assert {r["split"] for r in rows(report.manifest)} == {"val"}
    assert any("checksum" in note for note in report.notes)


def test_parquet_roles_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"picture": [image_bytes("red")], "words": ["hi"]}), path)
    guessed = import_source("parquet", path, tmp_path / "a")
    assert schema(guessed.manifest)["modalities"] == {"picture": "image"}
    named = import_source("parquet", path, tmp_path / "b", ImportOptions(columns={"words": "text"}))
    assert schema(named.manifest)["modalities"] == {"picture": "image", "words": "text"}
    check_decodes(named.manifest)
    pq.write_table(pa.table({"n": [1, 2]}), tmp_path / "numbers.parquet")
    with pytest.raises(ConfigError, match="--column"):
        import_source("parquet", tmp_path / "numbers.parquet", tmp_path / "c")
    assert not (tmp_path / "c" / "manifest.jsonl").exists()  # no half manifest left


def test_webdataset_round_trip(tmp_path: Path) -> None:
    shard = tmp_path / "shard-000000.tar"
    with wds.TarWriter(str(shard)) as sink:
        sink.write({"__key__": "s000", "png": image_bytes("red"), "txt": "a red square"})
        sink.write(
            {
                "__key__": "s001",
                "jpg": image_bytes("blue", "JPEG"),
                "wav": wav_bytes(),
                "json": {"caption": "a blue square that hums", "label": "blue"},
                "txt": "blue",
            }
        )
        sink.write({"__key__": "s002", "jpg": b"\xff\xd8\xff broken", "txt": "broken"})
        sink.write({"__key__": "s003", "png": image_bytes("green"), "json": b"{not json"})
        sink.write({"__key__": "s004", "png": image_bytes("green"), "txt": "a green square"})
    out = tmp_path / "imported"
    output = run_import("webdataset", str(shard), "--out", str(out), "--split", "train")
    assert "wrote 3 row(s)" in output and "2 record(s) skipped" in output
    manifest = out / "manifest.jsonl"
    check_decodes(manifest)
    written = rows(manifest)
    assert [r["id"] for r in written] == ["s000", "s001", "s004"]
    assert [r["text"] for r in written] == ["a red square", "blue", "a green square"]
    assert written[1]["caption"] == "a blue square that hums"
    assert written[1]["audio"].endswith(".wav") and "audio" not in written[0]
    for row, colour in zip(written, ("red", "blue", "green"), strict=True):
        assert near(colour_of(out / row["image"]), colour)
    described = schema(manifest)
    assert described["modalities"] == {
        "image": "image",
        "text": "text",
        "audio": "audio",
        "caption": "text",
    }
    report = import_source("webdataset", shard, tmp_path / "again")
    assert [(i.position, i.column, i.key) for i in report.issues] == [
        (3, "image", "shard-000000.tar s002"),
        (4, "json", "shard-000000.tar s003"),
    ]
    assert "invalid JSON" in report.issues[1].reason


def test_hf_saved_dataset_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets  # after the environment says offline

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["red", "green", "blue"]),
        }
    )

    def part(colours: list[str], broken: int | None = None) -> object:
        images = [{"bytes": image_bytes(c), "path": None} for c in colours]
        if broken is not None:
            images[broken] = {"bytes": b"GIF89a and then nothing", "path": None}
        labels = [["red", "green", "blue"].index(c) for c in colours]
        texts = [f"a {c} square" for c in colours]
        data = {"image": images, "text": texts, "label": labels}
        return datasets.Dataset.from_dict(data, features=features)

    saved = tmp_path / "saved"
    parts = {
        "train": part(["red", "green", "blue"], broken=1),
        "validation": part(["blue"]),
        "unsupervised": part(["red"]),
    }
    datasets.DatasetDict(parts).save_to_disk(str(saved))
    out = tmp_path / "imported"
    output = run_import("hf-datasets", str(saved), "--out", str(out))
    assert "wrote 3 row(s), 3 media file(s)" in output and "1 record(s) skipped" in output
    assert "unsupervised" in output  # a part that is no split is left out, with a note
    manifest = out / "manifest.jsonl"
    check_decodes(manifest)
    written = rows(manifest)
    assert [(r["label"], r["split"]) for r in written] == [
        ("red", "train"),
        ("blue", "train"),
        ("blue", "val"),
    ]
    for row in written:
        assert near(colour_of(out / row["image"]), row["label"])
    report = import_source("hf-datasets", saved, tmp_path / "again")
    assert [(i.position, i.column, i.key) for i in report.issues] == [(2, "image", "train row 1")]
    exported = tmp_path / "validation.parquet"
    parts["validation"].to_parquet(str(exported))  # ClassLabel names ride in its metadata
    labelled = import_source("parquet", exported, tmp_path / "from-parquet")
    assert [(r["label"], r.get("split")) for r in rows(labelled.manifest)] == [("blue", None)]


def test_hf_local_json_lines_stream_with_images_referenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "json"
    (source / "images").mkdir(parents=True)
    for colour in ("red", "green"):
        (source / "images" / f"{colour}.png").write_bytes(image_bytes(colour))
    lines = [
        '{"image": "images/red.png", "question": "Which colour?", "answer": "red"}',
        '{"image": "images/gone.png", "question": "Which colour?", "answer": "grey"}',
        '{"image": "images/green.png", "question": "Which colour?", "answer": "green"}',
    ]
    (source / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_source("hf-datasets", source, tmp_path / "out")
    assert [(i.position, i.column) for i in report.issues] == [(2, "image")]
    written = rows(report.manifest)
    assert [(r["answer"], r["split"]) for r in written] == [("red", "train"), ("green", "train")]
    assert report.media_files == 0  # paths are referenced, not copied
    assert schema(report.manifest)["labels"] == ["answer"]
    check_decodes(report.manifest)
