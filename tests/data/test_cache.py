"""Feature cache: content keys, shards, resumption, bad items, fingerprints, training data."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from omnifuse import encoders
from omnifuse.cli import app
from omnifuse.cli.options import parse_encoder_config, parse_encoders
from omnifuse.data.cache import (
    CachedFeatureDataset,
    FeatureCache,
    collate_cached,
    encode_manifest,
    file_key,
    text_key,
)
from omnifuse.data.cache.keys import fingerprint, fingerprint_fields, state_hash
from omnifuse.data.cache.store import column_dirname
from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, CorruptInputError
from omnifuse.threads import torch_threads

WORDS = ("red", "green", "blue", "small", "large", "circle", "square", "left", "right", "moves")
SCHEMA = ManifestSchema(
    modalities={"text": "text", "image": "image"}, labels=["label"], split="split", id="id"
)


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return encoders.create("minilm")


@pytest.fixture(scope="module")
def effnet() -> Encoder:
    return encoders.create("effnet-lite0")


def sentences(count: int, *, words: int = 6, seed: int = 0) -> list[str]:
    """Distinct sentences of varied length (so token counts differ)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        length = words + int(rng.integers(0, words))
        out.append(f"scene {i}: " + " ".join(rng.choice(WORDS, size=length)))
    return out


def text_manifest(path: Path, texts: list[str]) -> Path:
    rows = [
        {"id": f"s{i}", "split": "train", "text": t, "label": "ab"[i % 2]}
        for i, t in enumerate(texts)
    ]
    write_manifest(path, rows, SCHEMA)
    return path


def save_png(path: Path, seed: int, size: tuple[int, int] = (40, 32)) -> Path:
    pixels = np.random.default_rng(seed).integers(
        0, 256, size=(size[1], size[0], 3), dtype=np.uint8
    )
    Image.fromarray(pixels).save(path)
    return path


def shard_files(column_dir: Path) -> list[Path]:
    return sorted(column_dir.glob("shard-*.safetensors"))


def shard_contents(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata(), {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118


def all_features(root: Path, column: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    cache = FeatureCache(root)
    return {
        key: (cache.tokens(column, key), cache.get(column, key).pooled[0])
        for key in cache.keys(column)
    }


# -- writing ------------------------------------------------------------------------------------


def test_encode_stores_trimmed_tokens_and_pooled_equal_to_direct_encoding(
    tmp_path: Path, minilm: Encoder
) -> None:
    texts = sentences(7)
    manifest = text_manifest(tmp_path / "m.jsonl", [*texts, texts[0], texts[3], texts[0]])
    out = tmp_path / "cache"

    report = encode_manifest(manifest, {"text": minilm}, out, batch_size=3, shard_size=4)

    assert (report.encoded, report.reused, report.skipped) == (7, 0, [])
    assert report.columns["text"].items == 10
    assert [p.name for p in shard_files(out / "text")] == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    meta = json.loads((out / "cache.json").read_text())["columns"]["text"]
    assert (meta["encoder"], meta["dim"], meta["tokens"], meta["tokens_dtype"]) == (
        "minilm",
        384,
        True,
        "fp16",
    )
    with safe_open(str(out / "text" / "shard-00000.safetensors"), framework="pt") as f:
        assert f.get_tensor("pooled").dtype == torch.float32
        assert f.get_tensor("tokens").dtype == torch.float16
        assert json.loads(f.metadata()["keys"]) == [text_key(t) for t in texts[:4]]
    cache = FeatureCache(out)
    assert sorted(cache.keys("text")) == sorted(text_key(t) for t in texts)
    for text in texts:
        direct = minilm.encode([text])
        real = int(direct.mask.sum())
        got = cache.get("text", text_key(text))
        assert got.tokens.shape == (1, real, 384) and bool(got.mask.all())
        torch.testing.assert_close(got.pooled, direct.pooled, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            got.tokens[0], direct.tokens[0, :real].half().float(), atol=2e-3, rtol=2e-3
        )
    pooled = cache.pooled("text", [text_key(texts[2]), text_key(texts[5])])
    assert pooled.shape == (2, 384)
    torch.testing.assert_close(pooled.norm(dim=1), torch.ones(2), atol=1e-4, rtol=0)


def test_rerun_reuses_every_item_and_writes_nothing(tmp_path: Path, minilm: Encoder) -> None:
    manifest = text_manifest(tmp_path / "m.jsonl", sentences(5))
    out = tmp_path / "cache"
    encode_manifest(manifest, {"text": minilm}, out, shard_size=2)
    before = {p.name: p.stat().st_mtime_ns for p in shard_files(out / "text")}

    again = encode_manifest(manifest, {"text": minilm}, out, shard_size=2)

    assert (again.encoded, again.reused, again.interrupted) == (0, 5, False)
    assert {p.name: p.stat().st_mtime_ns for p in shard_files(out / "text")} == before


def test_pooled_only_cache_serves_pooled_vector_as_single_token(
    tmp_path: Path, minilm: Encoder
) -> None:
    texts = sentences(3)
    out = tmp_path / "cache"
    encode_manifest(
        text_manifest(tmp_path / "m.jsonl", texts), {"text": minilm}, out, store_tokens=False
    )
    with safe_open(str(out / "text" / "shard-00000.safetensors"), framework="pt") as f:
        assert sorted(f.keys()) == ["pooled"]
    got = FeatureCache(out).get("text", text_key(texts[1]))
    assert got.tokens.shape == (1, 1, 384)
    torch.testing.assert_close(got.tokens[0, 0], got.pooled[0], atol=0, rtol=0)


# -- interruption and resumption ----------------------------------------------------------------


def test_stopped_then_resumed_encode_is_identical_to_uninterrupted(
    tmp_path: Path, minilm: Encoder
) -> None:
    texts = sentences(17)
    lines = [*texts[:2], "   ", *texts[2:9], texts[1], *texts[9:]]  # a bad item in the first shard
    manifest = text_manifest(tmp_path / "m.jsonl", lines)
    options: dict[str, Any] = {"batch_size": 2, "shard_size": 5}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    encode_manifest(manifest, {"text": minilm}, whole, **options)

    stopped = encode_manifest(manifest, {"text": minilm}, parts, stop_after_batches=7, **options)
    # 3 batches per shard of 5: batches 1-6 finish two shards, batch 7 is lost with its shard
    assert stopped.interrupted and stopped.encoded == 9
    assert len(shard_files(parts / "text")) == 2
    resumed = encode_manifest(manifest, {"text": minilm}, parts, **options)

    assert (resumed.reused, resumed.encoded, resumed.interrupted) == (9, 8, False)
    assert [s.sample for s in resumed.skipped] == ["s2"]  # reported again, not retried
    assert [p.name for p in shard_files(parts / "text")] == [
        p.name for p in shard_files(whole / "text")
    ]
    for a, b in zip(shard_files(whole / "text"), shard_files(parts / "text"), strict=True):
        (meta_a, tensors_a), (meta_b, tensors_b) = shard_contents(a), shard_contents(b)
        assert meta_a == meta_b and tensors_a.keys() == tensors_b.keys() == {
            "pooled",
            "tokens",
            "offsets",
        }
        assert all(torch.equal(tensors_a[name], tensors_b[name]) for name in tensors_a), a.name
    assert all_features(whole, "text").keys() == {text_key(t) for t in texts}


def test_partial_shard_file_and_torn_source_line_are_not_trusted(
    tmp_path: Path, effnet: Encoder
) -> None:
    for i in range(4):
        save_png(tmp_path / f"p{i}.png", seed=i)
    rows = [{"id": str(i), "split": "train", "image": f"p{i}.png", "label": "x"} for i in range(4)]
    write_manifest(tmp_path / "m.jsonl", rows[:3], SCHEMA)
    out = tmp_path / "cache"
    encode_manifest(
        tmp_path / "m.jsonl", {"image": effnet}, out, shard_size=2, stop_after_batches=1
    )
    column = out / "image"
    (column / ".shard-00001.safetensors.tmp").write_bytes(b"half a shard")
    with (column / "sources.jsonl").open("a") as f:
        f.write('{"source": "/x.png", "size"')
    assert len(FeatureCache(out).keys("image")) == 2  # the torn line and the temp file are ignored

    write_manifest(tmp_path / "m.jsonl", rows, SCHEMA)
    resumed = encode_manifest(tmp_path / "m.jsonl", {"image": effnet}, out, shard_size=2)

    assert (resumed.reused, resumed.encoded) == (2, 2)
    assert not list(column.glob("*.tmp"))
    lines = (column / "sources.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [
        file_key(tmp_path / f"p{i}.png") for i in range(4)
    ]


def test_killed_cli_run_resumes_to_the_same_features(tmp_path: Path, minilm: Encoder) -> None:
    texts = sentences(96, words=8, seed=3)
    manifest = text_manifest(tmp_path / "m.jsonl", texts)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # one thread here as in the killed process: another count sums in another order
    with torch_threads(1):
        encode_manifest(manifest, {"text": minilm}, reference, batch_size=4, shard_size=8)
    command = [sys.executable, "-m", "omnifuse", "encode", str(manifest), "-e", "text=minilm"]
    command += ["-o", str(killed), "--batch-size", "4", "--shard-size", "8"]
    env = {**os.environ, "OMNIFUSE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}

    proc = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while not (killed / "text" / "shard-00000.safetensors").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = len(shard_files(killed / "text"))
    assert 1 <= kept < 12, "the run was not interrupted mid-way"

    with torch_threads(1):
        resumed = encode_manifest(manifest, {"text": "minilm"}, killed, batch_size=4, shard_size=8)

    assert (resumed.reused, resumed.encoded) == (8 * kept, 96 - 8 * kept)
    assert not list((killed / "text").glob("*.tmp"))
    want, got = all_features(reference, "text"), all_features(killed, "text")
    assert want.keys() == got.keys() and len(got) == 96
    for key, (tokens, pooled) in want.items():
        assert torch.equal(tokens, got[key][0]) and torch.equal(pooled, got[key][1]), key


# -- bad items ----------------------------------------------------------------------------------


def test_bad_items_are_skipped_reported_and_their_batch_still_encoded(
    tmp_path: Path, effnet: Encoder
) -> None:
    for i in range(3):
        save_png(tmp_path / f"ok{i}.png", seed=i)
    (tmp_path / "corrupt.png").write_bytes((tmp_path / "ok0.png").read_bytes()[:80])
    rows = [
        {"id": "a", "split": "test", "image": "ok0.png", "label": "x"},
        {"id": "b", "split": "test", "image": "corrupt.png", "label": "x"},
        {"id": "c", "split": "test", "image": "ok1.png", "label": "x"},
        {"id": "d", "split": "test", "image": "missing.png", "label": "x"},
        {"id": "e", "split": "test", "image": "ok2.png", "label": "x"},
    ]
    write_manifest(tmp_path / "m.jsonl", rows, SCHEMA)
    out = tmp_path / "cache"

    report = encode_manifest(tmp_path / "m.jsonl", {"image": effnet}, out, batch_size=8)

    assert report.encoded == 3 and report.columns["image"].skipped == 1
    by_sample = {item.sample: item for item in report.skipped}
    assert by_sample["b"].column == "image" and by_sample["b"].error == "CorruptInputError"
    assert (
        by_sample["line 4"].error == "ManifestIssue" and "missing.png" in by_sample["line 4"].reason
    )
    written = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {(e["sample"], e["error"]) for e in written} == {
        ("line 4", "ManifestIssue"),
        ("b", "CorruptInputError"),
    }
    cache = FeatureCache(out)
    assert cache.rejected("image").keys() == {file_key(tmp_path / "corrupt.png")}
    direct = effnet.encode([str(tmp_path / "ok1.png")])
    got = cache.get("image", file_key(tmp_path / "ok1.png"))
    assert got.tokens.shape == (1, 49, 1280)
    torch.testing.assert_close(got.pooled, direct.pooled, atol=1e-4, rtol=1e-4)


def test_cli_prints_skipped_items_and_summary(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    texts = ["a red circle", "\ud800 broken", "a blue square"]
    lines = [
        json.dumps({"id": str(i), "split": "val", "text": t, "label": "x"})
        for i, t in enumerate(texts)
    ]
    manifest.write_text("\n".join(lines) + "\n", encoding="ascii")
    out = tmp_path / "c"
    args = ["encode", str(manifest), "-e", "text=gru-text", "-c", "gru-text.dim=16", "-o", str(out)]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "1 item(s) skipped" in result.output and "TextEncodingError" in result.output
    assert "2 encoded, 0 reused from cache, 1 skipped" in result.output
    assert FeatureCache(out).info("text").dim == 16
    assert json.loads((out / "errors.jsonl").read_text())["sample"] == "1"


# -- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_follows_weights_config_and_dtype() -> None:
    torch.manual_seed(0)
    gru = encoders.create("gru-text", dim=16)
    base = fingerprint(fingerprint_fields(gru, "gru-text", {"dim": 16}))
    assert base == fingerprint(fingerprint_fields(gru, "gru-text", {"dim": 16, "device": "cpu"}))
    assert base != fingerprint(fingerprint_fields(gru, "gru-text", {"dim": 16, "layers": 1}))
    before = state_hash(gru)
    with torch.no_grad():
        next(gru.parameters())[3, 0] += 1e-3
    assert state_hash(gru) != before
    assert base != fingerprint(fingerprint_fields(gru, "gru-text", {"dim": 16}))


def test_reopening_a_column_with_another_encoder_is_a_clear_error(tmp_path: Path) -> None:
    manifest = text_manifest(tmp_path / "m.jsonl", sentences(4))
    out = tmp_path / "cache"
    config = {"text": {"dim": 16}}
    first = encode_manifest(manifest, {"text": "gru-text"}, out, encoder_config=config, seed=0)
    same = encode_manifest(manifest, {"text": "gru-text"}, out, encoder_config=config, seed=0)
    assert (first.encoded, same.encoded, same.reused) == (4, 0, 4)

    with pytest.raises(ConfigError, match=r"column 'text' .* fingerprint: cached"):
        encode_manifest(manifest, {"text": "gru-text"}, out, encoder_config=config, seed=1)
    with pytest.raises(ConfigError, match=r"requested 'transformer-text'"):
        encode_manifest(manifest, {"text": "transformer-text"}, out, encoder_config=config)
    with pytest.raises(ConfigError, match=r"tokens: cached True, requested False"):
        encode_manifest(
            manifest, {"text": "gru-text"}, out, encoder_config=config, store_tokens=False
        )
    with pytest.raises(ConfigError, match=r"holds text but encoder 'effnet-lite0'"):
        encode_manifest(manifest, {"text": "effnet-lite0"}, tmp_path / "other")
    with pytest.raises(ConfigError, match=r"'question' not modality column"):
        encode_manifest(manifest, {"question": "minilm"}, out)
    assert len(FeatureCache(out).keys("text")) == 4


# -- reading and training on cached features ----------------------------------------------------


@pytest.fixture
def mixed(
    tmp_path: Path, minilm: Encoder, effnet: Encoder
) -> tuple[Path, Path, list[dict[str, Any]]]:
    """A text + image manifest encoded into a cache; the media live in ``tmp_path/media``."""
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        save_png(media / f"img{i}.png", seed=10 + i, size=(24 + 8 * i, 24))
    (media / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 12)
    rows: list[dict[str, Any]] = [
        {
            "id": "p0",
            "split": "train",
            "text": "a red circle",
            "image": "media/img0.png",
            "label": "red",
        },
        {"id": "p1", "split": "train", "text": "a blue square on the left", "label": "blue"},
        {"id": "p2", "split": "train", "text": "green", "image": "media/bad.png", "label": "green"},
        {"id": "p3", "split": "train", "image": "media/img1.png", "label": "red"},
        {
            "id": "p4",
            "split": "val",
            "text": "a red circle",
            "image": "media/img2.png",
            "label": "red",
        },
        {"id": "p5", "split": "train", "image": "media/bad.png", "label": "blue"},
    ]
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, rows, SCHEMA)
    out = tmp_path / "cache"
    encode_manifest(manifest, {"text": minilm, "image": effnet}, out)
    return manifest, out, rows


def test_cached_dataset_reads_features_after_media_are_gone(
    tmp_path: Path, mixed: tuple[Path, Path, list[dict[str, Any]]], minilm: Encoder, effnet: Encoder
) -> None:
    manifest_path, out, _ = mixed
    manifest = load_manifest(manifest_path)
    image0 = effnet.encode([str(tmp_path / "media" / "img0.png")]).pooled[0]
    shutil.move(tmp_path / "media", tmp_path / "moved")

    data = CachedFeatureDataset(
        out, manifest, ["text", "image"], label_column="label", split="train"
    )

    assert [row[0] for row in data.rows] == ["p0", "p1", "p2", "p3"] and data.dropped == 1
    assert data.classes == ["blue", "green", "red"]
    first = data[0]
    assert first.present == {"text": True, "image": True} and first.label is not None
    assert int(first.label) == 2
    torch.testing.assert_close(first.features["image"][1], image0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        first.features["text"][1], minilm.encode(["a red circle"]).pooled[0], atol=1e-5, rtol=1e-4
    )
    assert data[2].present == {"text": True, "image": False}  # bad.png was skipped at encode time
    assert data[3].present == {"text": False, "image": True}

    batch = collate_cached([data[i] for i in range(4)])
    assert batch.columns == ("text", "image") and batch.names == ["p0", "p1", "p2", "p3"]
    assert batch.present.tolist() == [[True, True], [True, False], [True, False], [False, True]]
    assert batch.labels is not None and batch.labels.tolist() == [2, 0, 1, 2]
    image = batch.features["image"]
    assert image.tokens.shape == (4, 49, 1280) and image.tokens.dtype == torch.float32
    assert image.mask.sum(dim=1).tolist() == [49, 0, 0, 49]
    assert float(image.pooled[1].abs().sum()) == 0.0
    text = batch.features["text"]
    lengths = [
        int(minilm.encode([t]).mask.sum())
        for t in ("a red circle", "a blue square on the left", "green")
    ]
    assert text.mask.sum(dim=1).tolist() == [*lengths, 0]
    assert text.tokens.shape == (4, max(lengths), 384)

    restored = pickle.loads(pickle.dumps(data))
    assert torch.equal(restored[3].features["image"][0], data[3].features["image"][0])


def test_renamed_media_file_finds_its_features_by_content(
    tmp_path: Path, mixed: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    manifest, out, rows = mixed
    (tmp_path / "media" / "img1.png").rename(tmp_path / "media" / "renamed.png")
    rows = [{**r, "image": "media/renamed.png"} if r["id"] == "p3" else r for r in rows]
    write_manifest(manifest, rows, SCHEMA)

    data = CachedFeatureDataset(
        out, manifest, label_column="label", split="train", classes=["red", "blue", "green"]
    )

    assert data.columns == ("text", "image")
    third = data[3]
    assert third.present["image"] and third.label is not None and int(third.label) == 0
    cache = FeatureCache(out)
    assert cache.key_for("image", str(tmp_path / "media" / "renamed.png")) == file_key(
        tmp_path / "media" / "renamed.png"
    )


# -- command line parsing -----------------------------------------------------------------------


def test_encoder_options_parse_columns_encoders_and_scalar_values() -> None:
    mapping = parse_encoders("question=minilm, image=effnet-lite0,caption=minilm")
    assert mapping == {"question": "minilm", "image": "effnet-lite0", "caption": "minilm"}
    entries = ["minilm.max_length=64", "caption.normalize=false", "image.lr=1e-3", "image.x=cls"]
    config = parse_encoder_config(entries, mapping)
    assert config == {
        "question": {"max_length": 64},
        "image": {"lr": 1e-3, "x": "cls"},
        "caption": {"max_length": 64, "normalize": False},
    }
    result = CliRunner().invoke(app, ["encode", "m.jsonl", "-e", "text", "-o", "x"])
    assert result.exit_code == 2 and "COLUMN=ENCODER" in result.output


def test_column_folders_are_safe_distinct_names() -> None:
    assert column_dirname("question_audio", set()) == "question_audio"
    hashed = {column_dirname(name, {"text"}) for name in ("q/a", "Text", "cache.json", "..")}
    assert len(hashed) == 4 and all(name.startswith("col-") for name in hashed)


def test_damaged_shard_is_reported_by_path(tmp_path: Path, minilm: Encoder) -> None:
    out = tmp_path / "cache"
    encode_manifest(text_manifest(tmp_path / "m.jsonl", sentences(2)), {"text": minilm}, out)
    (out / "text" / "shard-00001.safetensors").write_bytes(b"\x10\x00" + b"garbage" * 3)
    with pytest.raises(CorruptInputError, match=r"shard-00001\.safetensors"):
        FeatureCache(out).keys("text")
