"""What the API tests serve: data, a trained fusion model, an index, and the server's settings.

The server runs a fusion model trained here on a small AV-digits build (seeded random CNN
features, so training takes seconds), a FAISS index of MiniLM sentence vectors, the pretrained
encoders, the llama.cpp Gemma model and faster-whisper, with an allowed root holding the digits
and speech data. Limits are set low so the size checks can be hit with small inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse.serve import ServeLimits

MB = 1024 * 1024
DIGITS_MODEL = "digits-gated"
SENSOR_MODEL = "track-record"
SENSOR_INT8 = "track-record-int8"  # the same model exported to ONNX with int8 weights
SENTENCES = [
    ("a red circle on a white background", "shapes", 1),
    ("a blue square next to a green triangle", "shapes", 2),
    ("two yellow stars above a purple circle", "shapes", 3),
    ("the cat sleeps on the warm windowsill", "animals", 1),
    ("a dog chases a ball across the park", "animals", 2),
    ("horses graze in a misty meadow at dawn", "animals", 3),
    ("the stock market fell sharply on monday", "finance", 1),
    ("interest rates rise to curb inflation", "finance", 2),
    ("a recipe for tomato soup with basil", "food", 1),
    ("fresh bread cools on the kitchen table", "food", 2),
    ("the train to the airport leaves at noon", "travel", 1),
    ("a ferry crosses the harbour in the rain", "travel", 2),
]
LIMITS = ServeLimits(
    max_body_bytes=2 * MB,
    max_media_bytes=1 * MB,
    max_items=64,
    max_image_pixels=4_000_000,
    max_audio_seconds=30.0,
    max_tokens=64,
    request_timeout_s=120.0,
)


@dataclass(frozen=True)
class ServeData:
    root: Path
    digits: Path
    models: Path
    index: Path
    speech: Path

    def digit_rows(self) -> list[dict[str, object]]:
        lines = (self.digits / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def speech_rows(self) -> list[dict[str, object]]:
        lines = (self.speech / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def train_gated_model(
    manifest: Path,
    target: str,
    encoders: dict[str, Any],
    out: Path,
    name: str,
    *,
    task: str,
    dim: int,
    epochs: int,
) -> None:
    """A gated-fusion classifier of ``target`` trained on cached pooled features of
    ``encoders`` (the cache in ``out/cache``), saved as the model ``out/models/name``."""
    from omnifuse.train.recipe import RunConfig, run

    config = RunConfig.from_dict(
        {
            "data": {"manifest": str(manifest), "target": target},
            "encoders": encoders,
            "cache": {"dir": str(out / "cache"), "batch_size": 32, "tokens": False},
            "model": {
                "task": task,
                "fusion": "gated",
                "fusion_cfg": {"dim": dim},
                "head": "classifier",
            },
            "train": {"epochs": epochs, "batch_size": 16, "seed": 0, "progress": False},
            "output": str(out / "models" / name),
        }
    )
    run(config)


def train_digits_model(digits: Path, out: Path) -> None:
    """A digit classifier on cached features of seeded random CNN encoders."""
    encoders = {
        "image": {"name": "cnn-image", "image_size": 16, "channels": [32]},
        "audio": {"name": "logmel-cnn"},
    }
    manifest = digits / "manifest.jsonl"
    train_gated_model(
        manifest, "label", encoders, out, DIGITS_MODEL, task="classification", dim=32, epochs=8
    )


def write_sensor_table(out: Path, count: int = 80) -> Path:
    """A manifest with an inline sensor track (3 channels, 10 Hz, varying length) and a table
    record per row; the label (rising or falling) is the track's trend, the record's ``unit``
    category says how the track is scaled."""
    import numpy as np

    from omnifuse.data.schema import ManifestSchema, write_manifest

    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        rising = bool(i % 2)
        steps = int(rng.integers(8, 30))
        trend = np.linspace(0.0, 1.0 if rising else -1.0, steps)[:, None]
        track = trend + rng.normal(0.0, 0.2, size=(steps, 3))
        rows.append(
            {
                "id": f"r{i:03d}",
                "split": "train" if i < 60 else "val" if i < 70 else "test",
                "track": {"values": np.round(track, 4).tolist(), "rate": 10.0},
                "speed": round(float(rng.normal(3.0, 1.0)), 3),
                "unit": str(rng.choice(["metres", "feet"])),
                "label": "rising" if rising else "falling",
            }
        )
    schema = ManifestSchema(
        modalities={"track": "series", "record": "tabular"},
        labels=["label"],
        tables={"record": {"numeric": ["speed"], "categorical": ["unit"]}},
    )
    path = out / "sensors.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(path, rows, schema)
    return path


def build_sentence_index(out: Path) -> None:
    """A FAISS exact index of MiniLM vectors of :data:`SENTENCES`, with metadata."""
    from omnifuse.encoders import create
    from omnifuse.index import create_index

    encoder = create("minilm")
    vectors = encoder.encode([s for s, _, _ in SENTENCES]).pooled.numpy()
    index = create_index("faiss-flat", out, dim=vectors.shape[1], metric="ip")
    index.add(
        [f"s{i:02d}" for i in range(len(SENTENCES))],
        vectors,
        [
            {"modality": "text", "source": text, "label": topic, "rank": rank}
            for text, topic, rank in SENTENCES
        ],
    )
    index.close()


def build_serve_data(root: Path) -> ServeData:
    """Everything the server reads, under ``root`` (the allowed root is ``root/allowed``)."""
    from omnifuse.data.builders import build

    allowed = root / "allowed"
    digits = allowed / "digits"
    build("av-digits", digits, seed=0, size=60)
    speech = allowed / "speech"
    build("speech-test", speech)
    work = root / "work"
    train_digits_model(digits, work)
    encoders = {
        "track": {"name": "series-cnn", "dim": 16, "rate": 10.0},
        "record": {"name": "tabular", "dim": 16},
    }
    sensors = write_sensor_table(allowed / "sensors")
    train_gated_model(
        sensors, "label", encoders, work, SENSOR_MODEL, task="classification", dim=16, epochs=8
    )
    from omnifuse.export import export_onnx, quantize_int8
    from omnifuse.models import load_model

    exported = work / "exported" / SENSOR_MODEL
    export_onnx(load_model(work / "models" / SENSOR_MODEL), exported)
    quantize_int8(exported, work / "models" / SENSOR_INT8)
    build_sentence_index(root / "index")
    return ServeData(allowed, digits, work / "models", root / "index", speech)


def media_files(data: ServeData) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """What the stand-in remote host answers: a digit image, a redirect, an oversized file."""
    row = data.digit_rows()[0]
    image = (data.digits / str(row["image"])).read_bytes()
    return {
        "/digit.png": (200, {"Content-Type": "image/png"}, image),
        "/moved.png": (302, {"Location": "http://example.com/digit.png"}, b""),
        "/huge.bin": (200, {}, b"\0" * (LIMITS.max_media_bytes + 1)),
    }
