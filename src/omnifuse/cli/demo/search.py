"""The alignment and search part of ``omnifuse demo``: a joint space on world, an index of its
images, and text and spoken queries against it."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from omnifuse.cli.render import console

TEXT_QUERIES = ("a red circle", "a blue square and a green triangle", "three stars")
SPOKEN_QUERY = "a large yellow circle"


def align_demo(world: Path, out: Path, *, size: int, seed: int) -> Path:
    """Train projection heads on world (captions ↔ images, speech bound to captions)."""
    from omnifuse.align import AlignConfig, train_alignment
    from omnifuse.align.presets import preset
    from omnifuse.cli.align import retrieval_table

    recipe = preset("world", size=size, seed=seed)
    recipe["data"]["dir"] = str(world)
    recipe["cache"]["dir"] = str(out / "cache")
    console.print(
        f"[bold]alignment[/]: captions ↔ images (CLIP-style), spoken captions bound to captions "
        f"(ImageBind-style) on world (size {size}) → {out / 'model'}"
    )
    result = train_alignment(AlignConfig.from_dict(recipe), out / "model")
    if "test" in result.metrics:
        title = "world retrieval, test split (chance R@1 in its own column)"
        console.print(retrieval_table(result.metrics["test"], title=title))
    console.print(f"  trained in {result.seconds:.1f} s")
    return result.folder


def index_demo(world: Path, model_dir: Path, out: Path) -> Path:
    """Index every world image with the aligned model (caption and thumbnail kept as metadata,
    for the web page), then query it by text and by speech."""
    from omnifuse.align import load_aligned
    from omnifuse.index import create_index

    model = load_aligned(model_dir)
    rows = read_rows(world / "scenes.jsonl")
    folder = out / "index"
    start = time.perf_counter()
    vectors = model.embed("image", [str(world / row["image"]) for row in rows])
    metadata = [
        {
            "modality": "image",
            "source": row["image"],
            "caption": row["caption"],
            "split": row["split"],
            "thumbnail": thumbnail(world / row["image"]),
        }
        for row in rows
    ]
    attributes = {"model": str(model_dir.resolve()), "modality": "image"}
    index = create_index("faiss-flat", folder, dim=model.dim, attributes=attributes)
    try:
        index.add([row["id"] for row in rows], vectors, metadata)
        index.flush()
        console.print(
            f"[bold]index[/]: {len(index)} world images in {folder} "
            f"({time.perf_counter() - start:.1f} s)"
        )
        for query in TEXT_QUERIES:
            hits = index.search(model.embed("text", [query]), k=3)[0]
            console.print(hits_table(f"text: “{query}”", hits))
        spoken = spoken_query(out / "spoken-query.wav")
        hits = index.search(model.embed("audio", [str(spoken)]), k=3)[0]
        console.print(hits_table(f"speech (espeak-ng): “{SPOKEN_QUERY}”", hits))
    finally:
        index.close()
    return folder


def read_rows(manifest: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file of the built-in data (scenes, questions, recordings)."""
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def thumbnail(path: Path, size: int = 48) -> str:
    """A small PNG data URI of an image, which the web page shows beside a hit."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB")
    small.thumbnail((size, size))
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def spoken_query(path: Path) -> Path:
    """Synthesise the spoken query with an espeak-ng voice that world's training never used."""
    from omnifuse.speech.tts import Voice, synthesize, write_wav

    write_wav(path, synthesize(SPOKEN_QUERY, Voice("espeak-ng", "en-us", 160, 50)))
    return path


def hits_table(title: str, hits: list[Any]) -> Table:
    """The top hits of one query: score, image and the caption world wrote for it."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("rank", "score", "image", "its caption"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, hit in enumerate(hits, 1):
        image = Path(str(hit.metadata.get("source", hit.id))).name
        table.add_row(str(rank), f"{hit.score:.3f}", image, str(hit.metadata.get("caption", "")))
    return table
