"""``omnifuse index``: build from a manifest through an aligned model or from vector files,
search by text, image or vector with filters, delete, info; bad items skipped and listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from index_helpers import brute_force, clustered
from PIL import Image
from typer.testing import CliRunner

from omnifuse.align import AlignedModel, load_aligned, save_aligned
from omnifuse.align.heads import HeadSpec
from omnifuse.align.model import ModalitySpec
from omnifuse.cli import app
from omnifuse.errors import InvalidValueError
from omnifuse.index import open_index

runner = CliRunner()
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def aligned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small aligned model (seeded trainable encoders, untrained heads) saved as a folder."""
    specs = {
        "text": ModalitySpec(
            "caption", {"name": "gru-text", "seed": 0}, HeadSpec(input_dim=128, dim=24)
        ),
        "image": ModalitySpec(
            "image", {"name": "cnn-image", "seed": 0}, HeadSpec(input_dim=128, dim=24)
        ),
    }
    return save_aligned(AlignedModel(specs), tmp_path_factory.mktemp("aligned") / "model")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    rows = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        Image.new("RGB", (40, 40), rgb).save(tmp_path / f"{name}.png")
        split = "train" if i < 2 else "test"
        rows.append(
            {
                "id": f"s{i}",
                "image": f"{name}.png",
                "caption": f"a {name} square",
                "label": i,
                "split": split,
            }
        )
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    rows.append(
        {
            "id": "s3",
            "image": "broken.png",
            "caption": "a broken picture",
            "label": 3,
            "split": "test",
        }
    )
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema = {
        "modalities": {"image": "image", "caption": "text"},
        "labels": ["label"],
        "split": "split",
        "id": "id",
    }
    (tmp_path / "items.schema.json").write_text(json.dumps(schema))
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["index", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def search_json(*args: str) -> list[dict]:
    return [json.loads(line) for line in invoke("search", *args, "--json").splitlines()]


def test_build_search_delete_from_a_manifest(
    manifest: Path, aligned_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ix"
    built = invoke(
        "build",
        "--manifest",
        manifest,
        "--model",
        aligned_model,
        "--out",
        out,
        "--backend",
        "faiss-flat",
    )
    assert "1 item(s) skipped" in built and "s3:image" in built and "CorruptInputError" in built
    assert "added 7 item(s)" in built

    model = load_aligned(aligned_model)
    query = model.embed("text", ["a green square"])
    hits = search_json(out, "--text", "a green square", "--k", "7")
    assert len(hits) == 7
    want = {}
    for hit in hits:
        meta = hit["metadata"]
        assert hit["id"] == f"{meta['sample']}:{meta['column']}"
        vector = model.embed(meta["modality"], [meta["source"]])
        want[hit["id"]] = float((query @ vector.T)[0, 0])
        assert hit["score"] == pytest.approx(want[hit["id"]], abs=1e-5)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    images = search_json(
        out, "--image", manifest.parent / "blue.png", "--filter", "modality=image", "-k", "5"
    )
    assert images[0]["id"] == "s2:image"
    assert images[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert {h["metadata"]["modality"] for h in images} == {"image"} and len(images) == 3

    test_split = search_json(out, "--text", "square", "-f", "split=test", "-f", "label<3")
    assert {h["id"] for h in test_split} == {"s2:image", "s2:caption"}
    table = invoke("search", out, "--text", "a red square", "--k", "2")
    assert "2 hit(s)" in table and "higher is closer" in table

    assert "deleted 1 of 2 id(s); 6 item(s) left" in invoke(
        "delete", out, "--ids", "s0:caption,nope"
    )
    assert "items" in invoke("info", out) and "6" in invoke("info", out)
    added = invoke("add", out, "--manifest", manifest, "--columns", "caption")
    assert "added 4 item(s)" in added
    with open_index(out) as index:
        assert len(index) == 7
        assert index.attributes["model"] == str(aligned_model.resolve())
        got = index.get(["s3:caption"])[0]
        assert (
            got is not None and got["metadata"]["label"] == 3 and got["metadata"]["split"] == "test"
        )


def test_build_from_vector_files(tmp_path: Path) -> None:
    vectors = clustered(500, 16, seed=4)
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.txt").write_text("".join(f"v{i}\n" for i in range(500)))
    (tmp_path / "meta.jsonl").write_text(
        "".join(json.dumps({"label": i % 4}) + "\n" for i in range(500))
    )
    np.save(tmp_path / "q.npy", vectors[7])
    out = tmp_path / "ix"
    built = invoke(
        "build", "--vectors", tmp_path / "v.npy", "--ids", tmp_path / "ids.txt",
        "--metadata", tmp_path / "meta.jsonl", "--out", out, "--backend", "faiss-hnsw", "-O", "M=8",
    )  # fmt: skip
    assert "added 500 vector(s)" in built and '"M": 8' in built
    hits = search_json(out, "--vector", tmp_path / "q.npy", "-k", "4", "-f", "label=[1,3]")
    keep = [i for i in range(500) if i % 4 in (1, 3)]
    _, rows = brute_force(vectors[keep], vectors[7:8], 4)
    assert [h["id"] for h in hits] == [f"v{keep[r]}" for r in rows[0]]


def test_cli_errors_are_readable(tmp_path: Path, manifest: Path) -> None:
    result = runner.invoke(app, ["index", "build", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--manifest" in result.output
    np.save(tmp_path / "v.npy", np.zeros((3, 4), np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    result = runner.invoke(
        app,
        [
            "index",
            "build",
            "--vectors",
            str(tmp_path / "v.npy"),
            "--ids",
            str(tmp_path / "ids.txt"),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert isinstance(result.exception, InvalidValueError) and "for 2 ids" in str(result.exception)
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    invoke(
        "build",
        "--vectors",
        tmp_path / "v.npy",
        "--ids",
        tmp_path / "ids.txt",
        "--out",
        tmp_path / "y",
        "--backend",
        "faiss-flat",
    )
    result = runner.invoke(
        app,
        ["index", "search", str(tmp_path / "y"), "--vector", str(tmp_path / "v.npy"), "-f", "a>=x"],
    )
    assert isinstance(result.exception, InvalidValueError) and "takes a number" in str(
        result.exception
    )
    result = runner.invoke(app, ["index", "search", str(tmp_path / "y")])
    assert result.exit_code == 2 and "exactly one of" in result.output
    result = runner.invoke(app, ["index", "search", str(tmp_path / "y"), "--text", "hi"])
    assert result.exit_code == 2 and "--model" in result.output
