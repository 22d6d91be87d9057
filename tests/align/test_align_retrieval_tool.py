"""The assistant's retrieval tool on a real aligned model: an attached image (a decoded PIL image,
as the assistant holds it) finds its own scene and caption in an index of the world images."""

from __future__ import annotations

import json
from pathlib import Path

from omnifuse.align import AlignResult, load_aligned
from omnifuse.assistant.tools import RetrievalTool, ToolRequest
from omnifuse.index import create_index
from omnifuse.io.image import load_image


def test_an_attached_image_retrieves_its_own_caption(
    tiny_run: AlignResult, tiny_world: Path, tmp_path: Path
) -> None:
    model = load_aligned(tiny_run.folder)
    rows = [json.loads(line) for line in (tiny_world / "scenes.jsonl").read_text().splitlines()]
    vectors = model.embed("image", [str(tiny_world / row["image"]) for row in rows])
    index = create_index("faiss-flat", tmp_path / "index", dim=vectors.shape[1])
    index.add([row["id"] for row in rows], vectors, [{"caption": row["caption"]} for row in rows])
    tool = RetrievalTool(lambda: index, model.embed, k=2)  # opened when first consulted
    asked = rows[5]
    note = tool.run(ToolRequest("what is this?", image=load_image(tiny_world / asked["image"])))
    assert note is not None
    first = note.data["hits"][0]
    assert first["text"] == asked["caption"] and first["score"] > 0.99
    assert note.text.startswith(f'nearest indexed items to the image: "{asked["caption"]}"')
    index.close()
