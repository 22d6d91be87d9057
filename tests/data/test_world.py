"""The ``world`` dataset: reproducible, true to its scenes, balanced, decodable, split by scene."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnifuse.data.builders import datasets
from omnifuse.data.schema import SPLITS, DatasetInfo, schema_path_for
from omnifuse.data.world import build_world
from omnifuse.data.world.language import AnswerBalancer, ask
from omnifuse.data.world.scene import COLOURS, sample_scene
from omnifuse.data.world.video import EVENTS, event_schedule
from omnifuse.errors import ConfigError
from omnifuse.io import load_video
from omnifuse.speech.noise import measured_snr_db
from omnifuse.speech.tts import default_voices

pytestmark = pytest.mark.skipif(not default_voices(), reason="needs espeak-ng or flite")

SIZE = 12
CLIPS = 4
VIDEO_SIZE = 64
OPTIONS: dict[str, Any] = {"size": SIZE, "video_clips": CLIPS, "video_size": VIDEO_SIZE}
# The sound of each shape, as documented: its fundamental frequency in Hz.
SHAPE_HZ = {"circle": 440.0, "square": 220.0, "triangle": 330.0, "star": 660.0}
RELATIONS = {
    "to the left of": lambda a, b: a["x"] < b["x"],
    "to the right of": lambda a, b: a["x"] > b["x"],
    "above": lambda a, b: a["y"] < b["y"],
    "below": lambda a, b: a["y"] > b["y"],
}
REL = "(to the left of|to the right of|above|below)"
NUMBER_WORDS = ["zero", "one", "two", "three", "four"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three builds: seed 0 twice and seed 1 once."""
    dirs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path_factory.mktemp(f"world-{name}")
        build_world(out, seed=seed, **OPTIONS)
        dirs[name] = out
    return dirs


@pytest.fixture(scope="module")
def world(built: dict[str, Path]) -> Path:
    return built["a"]


def read_rows(out: Path, manifest: str) -> list[dict[str, Any]]:
    lines = (out / manifest).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def scene_objects(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {row["id"]: row["scene"]["objects"] for row in read_rows(out, "scenes.jsonl")}


def files(out: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob(pattern))}


# ----------------------------------------------------------------------------- reproducibility


def test_registered_under_its_name() -> None:
    assert "world" in datasets
    assert datasets.get("world") is build_world


def test_same_seed_gives_identical_files(built: dict[str, Path]) -> None:
    a, b = built["a"], built["b"]
    for pattern in ("*.json", "*.jsonl", "images/*.png", "audio/*.wav"):
        fa, fb = files(a, pattern), files(b, pattern)
        assert fa, pattern
        assert fa == fb, pattern


def test_same_seed_gives_the_same_clips(built: dict[str, Path]) -> None:
    """Compressed bytes may differ by encoder scheduling; the decoded clips must not."""
    clips_a, clips_b = (
        sorted(built["a"].glob("video/*.mp4")),
        sorted(built["b"].glob("video/*.mp4")),
    )
    assert clips_a and [p.name for p in clips_a] == [p.name for p in clips_b]
    for pa, pb in zip(clips_a, clips_b, strict=True):
        va, vb = load_video(pa, num_frames=6), load_video(pb, num_frames=6)
        assert np.abs(va.frames.astype(int) - vb.frames.astype(int)).max() <= 2
        assert va.audio is not None and vb.audio is not None
        assert np.abs(va.audio - vb.audio).max() < 1e-2


def test_different_seed_gives_different_data(built: dict[str, Path]) -> None:
    a, c = built["a"], built["c"]
    assert (a / "vqa.jsonl").read_text() != (c / "vqa.jsonl").read_text()
    assert files(a, "images/*.png") != files(c, "images/*.png")
    assert [r["caption"] for r in read_rows(a, "scenes.jsonl")] != [
        r["caption"] for r in read_rows(c, "scenes.jsonl")
    ]


def test_dataset_json_lists_manifests_with_schemas_and_existing_files(world: Path) -> None:
    info = DatasetInfo.read(world)
    assert info.name == "world" and info.size == SIZE and info.seed == 0
    assert info.manifests == {"scenes": "scenes.jsonl", "vqa": "vqa.jsonl", "video": "video.jsonl"}
    for manifest in info.manifests.values():
        path = world / manifest
        schema = json.loads(schema_path_for(path).read_text())
        for row in read_rows(world, manifest):
            for column, kind in schema["modalities"].items():
                if kind != "text":
                    assert (path.parent / row[column]).is_file(), row[column]
            for label in schema["labels"]:
                assert row[label] in info.params["answers"] + info.params["events"]
    assert len(read_rows(world, "scenes.jsonl")) == SIZE
    assert len(read_rows(world, "vqa.jsonl")) == SIZE * 3
    assert len(read_rows(world, "video.jsonl")) == CLIPS


# ----------------------------------------------------------------------------- truth


def _find(objects: list[dict[str, Any]], colour: str, shape: str) -> dict[str, Any]:
    [obj] = [o for o in objects if o["colour"] == colour and o["shape"] == shape]
    return obj


def _only(objects: list[dict[str, Any]], **attrs: str) -> dict[str, Any]:
    matching = [o for o in objects if all(o[k] == v for k, v in attrs.items())]
    assert len(matching) == 1, f"{attrs} does not name one object"
    return matching[0]


def expected_answer(question: str, objects: list[dict[str, Any]]) -> str:
    """The answer to ``question`` worked out from the scene description alone."""
    q = question
    if re.fullmatch(r"how many (shapes are there|objects are in the picture)\?", q):
        return str(len(objects))
    if m := re.fullmatch(r"how many (\w+) (shapes are there|objects can you see)\?", q):
        return str(sum(o["colour"] == m[1] for o in objects))
    if m := re.fullmatch(r"how many (\w+)s (are there|can you see)\?", q):
        return str(sum(o["shape"] == m[1] for o in objects))
    if m := re.fullmatch(r"(is there|can you see) a (\w+) (\w+)( in the picture)?\?", q):
        return "yes" if any(o["colour"] == m[2] and o["shape"] == m[3] for o in objects) else "no"
    if m := re.fullmatch(r"(what colour is the (\w+)|which colour does the (\w+) have)\?", q):
        return str(_only(objects, shape=m[2] or m[3])["colour"])
    if m := re.fullmatch(
        r"(what shape is the (\w+) object|what is the shape of the (\w+) thing)\?", q
    ):
        return str(_only(objects, colour=m[2] or m[3])["shape"])
    if m := re.fullmatch(r"(what size is the (\w+) (\w+)|is the (\w+) (\w+) small or large)\?", q):
        return str(_find(objects, m[2] or m[4], m[3] or m[5])["size"])
    if m := re.fullmatch(rf"is the (\w+) (\w+) {REL} the (\w+) (\w+)\?", q):
        a, b = _find(objects, m[1], m[2]), _find(objects, m[4], m[5])
        return "yes" if RELATIONS[m[3]](a, b) else "no"
    if m := re.fullmatch(rf"what (shape|colour) is (the shape )?{REL} the (\w+) (\w+)\?", q):
        ref = _find(objects, m[4], m[5])
        found = [o for o in objects if o is not ref and RELATIONS[m[3]](o, ref)]
        assert len(found) == 1, q
        return str(found[0][m[1]])
    raise AssertionError(f"unrecognised question {q!r}")


def test_every_answer_is_true_of_its_scene(world: Path) -> None:
    scenes = scene_objects(world)
    for row in read_rows(world, "vqa.jsonl"):
        assert expected_answer(row["question"], scenes[row["scene_id"]]) == row["answer"], row


def test_every_question_type_appears(world: Path) -> None:
    qtypes = Counter(row["qtype"] for row in read_rows(world, "vqa.jsonl"))
    assert set(qtypes) == {"attribute", "count", "existence", "spatial"}


def test_captions_name_every_object_and_only_true_relations(world: Path) -> None:
    colours, shapes = "|".join(COLOURS), "circle|square|triangle|star"
    mention = rf"(?:(small|large) )?({colours}) ({shapes})"
    relations_checked = 0
    for row in read_rows(world, "scenes.jsonl"):
        text, objects = row["caption"], row["scene"]["objects"]
        mentions = re.findall(mention, text)
        assert len(mentions) == len(objects) == row["n_objects"], text
        assert len({(c, s) for _, c, s in mentions}) == len(objects), text
        for size, colour, shape in mentions:
            obj = _find(objects, colour, shape)
            assert not size or obj["size"] == size, text
        for rel in re.finditer(
            rf"({colours}) ({shapes}) {REL} a (?:small |large )?({colours}) ({shapes})", text
        ):
            a, b = _find(objects, rel[1], rel[2]), _find(objects, rel[4], rel[5])
            assert RELATIONS[rel[3]](a, b), text
            relations_checked += 1
        if number := re.search(r"(\w+) shapes?:", text):
            assert number[1] == NUMBER_WORDS[len(objects)], text
    assert relations_checked > 0


def nearest_colour(pixel: np.ndarray) -> str:
    return min(COLOURS, key=lambda c: float(np.sum((pixel - np.array(COLOURS[c])) ** 2)))


def test_image_pixels_show_each_object_in_its_colour_at_its_place(world: Path) -> None:
    for row in read_rows(world, "scenes.jsonl"):
        image = np.asarray(Image.open(world / row["image"]), dtype=np.int32)
        assert image.shape == (128, 128, 3)
        for obj in row["scene"]["objects"]:
            x, y = int(obj["x"] * 128), int(obj["y"] * 128)
            pixel = image[y, x]
            assert nearest_colour(pixel) == obj["colour"], (row["id"], obj)
            assert np.abs(pixel - np.array(COLOURS[obj["colour"]])).max() < 15
        corner = image[:3, :3].reshape(-1, 3).mean(axis=0)
        assert np.abs(corner - np.array(row["scene"]["background"])).max() < 6


# ----------------------------------------------------------------------------- speech


def test_spoken_questions_and_captions_are_plausible_speech(world: Path) -> None:
    spoken = [(r["question"], r["question_audio"]) for r in read_rows(world, "vqa.jsonl")]
    spoken += [(r["caption"], r["caption_audio"]) for r in read_rows(world, "scenes.jsonl")]
    for text, path in spoken:
        wave, rate = sf.read(world / path, dtype="float32")
        assert rate == 16_000 and wave.ndim == 1
        seconds = len(wave) / rate
        assert 0.3 < seconds < 0.15 * len(text) + 1.0, (text, seconds)
        assert float(np.sqrt(np.mean(wave**2))) > 0.01, text


def test_voices_vary_across_utterances(world: Path) -> None:
    voices = {r["question_voice"] for r in read_rows(world, "vqa.jsonl")}
    engines = {v.split(":")[0] for v in voices}
    assert len(voices) >= 8
    assert len(engines) == len({v.engine for v in default_voices()})


def test_noise_option_adds_noise_at_the_requested_snr(world: Path, tmp_path: Path) -> None:
    build_world(tmp_path, seed=0, size=2, video_clips=0, noise_snr_db=10.0)
    clean_rows = {r["id"]: r for r in read_rows(world, "vqa.jsonl")}
    for row in read_rows(tmp_path, "vqa.jsonl"):
        clean_row = clean_rows[row["id"]]
        assert clean_row["question"] == row["question"]
        clean, _ = sf.read(world / clean_row["question_audio"], dtype="float32")
        noisy, _ = sf.read(tmp_path / row["question_audio"], dtype="float32")
        assert measured_snr_db(clean, noisy) == pytest.approx(10.0, abs=0.5)


# ----------------------------------------------------------------------------- balance


def test_answers_in_the_build_are_balanced(world: Path) -> None:
    rows = read_rows(world, "vqa.jsonl")
    existence = [r["answer"] for r in rows if r["qtype"] == "existence"]
    assert abs(existence.count("yes") - existence.count("no")) <= 1
    top_share = Counter(r["answer"] for r in rows).most_common(1)[0][1] / len(rows)
    assert top_share < 0.3


def test_answers_stay_balanced_over_many_scenes() -> None:
    """A question-only or prior-only model gains little: answers of each type are spread."""
    rng = np.random.default_rng(7)
    balancer = AnswerBalancer()
    questions = [q for i in range(400) for q in ask(sample_scene(rng), 3, rng, balancer)]
    answers = Counter(q.answer for q in questions)
    assert answers.most_common(1)[0][1] / len(questions) < 0.2
    existence = [q.answer for q in questions if q.qtype == "existence"]
    assert existence.count("yes") / len(existence) == pytest.approx(0.5, abs=0.03)
    counts = Counter(q.answer for q in questions if q.qtype == "count")
    assert set(counts) == {"0", "1", "2", "3", "4"}
    assert max(counts.values()) / sum(counts.values()) < 0.3
    spatial = Counter(q.answer for q in questions if q.qtype == "spatial")
    assert spatial["yes"] == pytest.approx(spatial["no"], abs=2)
    # the same question text must not always have the same answer
    by_text: dict[str, set[str]] = {}
    for q in questions:
        by_text.setdefault(q.text, set()).add(q.answer)
    repeated = [answers for text, answers in by_text.items() if text.startswith("how many")]
    assert sum(len(a) > 1 for a in repeated) / len(repeated) > 0.8


def test_event_schedule_uses_every_event_equally() -> None:
    schedule = event_schedule(3 * len(EVENTS), np.random.default_rng(0))
    counts = Counter(f"{shape}-moves-{direction}" for shape, direction in schedule)
    assert set(counts) == set(EVENTS) and set(counts.values()) == {3}


# ----------------------------------------------------------------------------- video


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].sample_rate
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return frames, np.concatenate(chunks), rate


def centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    distance = np.abs(frame.astype(np.int32) - np.array(COLOURS[colour])).sum(axis=-1)
    ys, xs = np.nonzero(distance < 60)
    assert len(xs) > 10, colour
    return np.array([xs.mean(), ys.mean()]) / frame.shape[1]


def dominant_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


def test_video_clips_decode_with_frames_and_soundtrack(world: Path) -> None:
    for row in read_rows(world, "video.jsonl"):
        frames, audio, rate = decode(world / row["video"])
        assert frames.shape == (row["n_frames"], VIDEO_SIZE, VIDEO_SIZE, 3) == (16, 64, 64, 3)
        duration = row["n_frames"] / row["fps"]
        assert abs(len(audio) / rate - duration) < 0.15
        assert row["event"] == f"{row['shape']}-moves-{row['direction']}"


def test_sounding_object_moves_in_the_labelled_direction(world: Path) -> None:
    steps = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for row in read_rows(world, "video.jsonl"):
        frames, _, _ = decode(world / row["video"])
        for mover in (row["sounding"], row["distractor"]):
            moved = centroid(frames[-1], mover["colour"]) - centroid(frames[0], mover["colour"])
            expected = np.array(steps[mover["direction"]]) * 0.36
            assert np.abs(moved - expected).max() < 0.06, (row["id"], mover, moved)
        assert row["sounding"]["direction"] != row["distractor"]["direction"]
        assert row["sounding"]["shape"] != row["distractor"]["shape"]
        assert row["sounding"]["colour"] == row["colour"]


def test_soundtrack_plays_the_sounding_shape_while_it_moves(world: Path) -> None:
    for row in read_rows(world, "video.jsonl"):
        _, audio, rate = decode(world / row["video"])
        start, end = row["sound_start_s"], row["sound_end_s"]
        during = audio[int((start + 0.1) * rate) : int((end - 0.1) * rate)]
        before = audio[: int(max(start - 0.1, 0.05) * rate)]
        assert dominant_hz(during, rate) == pytest.approx(SHAPE_HZ[row["shape"]], rel=0.03)
        assert np.sqrt(np.mean(during**2)) > 10 * np.sqrt(np.mean(before**2))


# ----------------------------------------------------------------------------- splits


def test_splits_are_valid_and_follow_the_scene(world: Path) -> None:
    scenes = read_rows(world, "scenes.jsonl")
    split_of = {r["id"]: r["split"] for r in scenes}
    assert set(split_of.values()) == set(SPLITS)
    assert Counter(split_of.values()) == {"train": SIZE - 2, "val": 1, "test": 1}
    for row in read_rows(world, "vqa.jsonl"):
        assert row["split"] == split_of[row["scene_id"]]
        assert row["image"] == f"images/{row['scene_id']}.png"
    assert {r["split"] for r in read_rows(world, "video.jsonl")} <= set(SPLITS)


@pytest.mark.parametrize(
    "options",
    [{"size": 0}, {"questions_per_scene": 0}, {"video_size": 63}, {"image_size": 8}],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        build_world(tmp_path, **options)
