"""Build the ``world`` dataset: images, captions, questions, speech and video, with manifests.

Layout under ``out``::

    dataset.json
    scenes.jsonl  scenes.schema.json   # image, caption, spoken caption, scene description
    vqa.jsonl     vqa.schema.json      # image, question, spoken question, one-word answer, type
    video.jsonl   video.schema.json    # clip (frames + soundtrack), event label
    images/  audio/  video/

Every random choice comes from a generator derived from the seed, a stream number and the item
index, so the same seed and options give identical manifests, PNG and WAV files, and scene ``i``
(image, caption, questions, speech) is the same in a build of any size above ``i``. Splits
(80/10/10) are drawn by scene, and a scene's questions share its split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.builders import datasets
from omnifuse.data.schema import SPLITS, DatasetInfo, ManifestSchema, write_manifest
from omnifuse.data.world.language import ANSWERS, QTYPES, AnswerBalancer, Question, ask, caption
from omnifuse.data.world.render import render_scene
from omnifuse.data.world.scene import Scene, sample_scene
from omnifuse.data.world.spoken import Speaker, resolve_voices, voice_for
from omnifuse.data.world.video import (
    EVENTS,
    SHAPE_SOUNDS,
    event_schedule,
    render_frames,
    sample_clip,
    soundtrack,
    video_codec,
    write_mp4,
)
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.speech.tts import SAMPLE_RATE, Voice

SCENE_STREAM, CAPTION_STREAM, QUESTION_STREAM, RENDER_STREAM, SPLIT_STREAM = 1, 2, 3, 4, 5
CLIP_STREAM, CLIP_SPLIT_STREAM, EVENT_STREAM = 6, 7, 8
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

SCENES_SCHEMA = ManifestSchema(
    modalities={"image": "image", "caption": "text", "caption_audio": "audio"},
    labels=[],
    extra=["n_objects", "scene", "caption_voice"],
)
VQA_SCHEMA = ManifestSchema(
    modalities={"image": "image", "question": "text", "question_audio": "audio"},
    labels=["answer"],
    extra=["scene_id", "qtype", "question_voice"],
)
VIDEO_SCHEMA = ManifestSchema(
    modalities={"video": "video"},
    labels=["event"],
    extra=["shape", "direction", "colour", "distractor", "sound_start_s", "sound_end_s"],
)


def assign_splits(count: int, rng: np.random.Generator) -> list[str]:
    """A split per item: 80/10/10 in a seeded order, val and test non-empty from three items."""
    held_out = 0 if count < 3 else max(1, round(count * SPLIT_FRACTIONS["val"]))
    labels = ["val"] * held_out + ["test"] * held_out
    labels += ["train"] * (count - len(labels))
    return [labels[i] for i in rng.permutation(count)]


def _check_options(**options: Any) -> None:
    if options["size"] < 1:
        raise ConfigError(f"size must be at least 1, not {options['size']}")
    if options["questions_per_scene"] < 1:
        raise ConfigError("questions_per_scene must be at least 1")
    if options["video_clips"] < 0:
        raise ConfigError("video_clips must be 0 or more")
    if options["image_size"] < 32:
        raise ConfigError("image_size must be at least 32 pixels")
    if options["video_size"] < 32 or options["video_size"] % 2:
        raise ConfigError("video_size must be an even number of at least 32 pixels")
    if options["video_fps"] < 1 or options["video_seconds"] <= 0:
        raise ConfigError("video_fps and video_seconds must be positive")


@datasets.register("world")
def build_world(
    out: Path,
    *,
    seed: int = 0,
    size: int = 100,
    questions_per_scene: int = 3,
    video_clips: int | None = None,
    image_size: int = 128,
    video_size: int = 64,
    video_fps: int = 8,
    video_seconds: float = 2.0,
    noise_snr_db: float | None = None,
    voices: Sequence[Voice] | None = None,
) -> DatasetInfo:
    """Synthetic scenes of shapes: images, captions, VQA, spoken text and audio-visual clips.

    ``size`` scenes of 1-4 shapes, each with a PNG of ``image_size`` pixels, a caption and
    ``questions_per_scene`` questions, all spoken; ``video_clips`` clips (default ``size // 4``) of
    ``video_seconds`` at ``video_fps``, ``video_size`` pixels square. ``voices`` are rotated over
    (default: every installed espeak-ng and flite voice); rate and pitch are drawn per utterance,
    replacing the voices' own. ``noise_snr_db`` adds white noise to the speech at that SNR.
    """
    out = Path(out)
    clips = max(1, size // 4) if video_clips is None else video_clips
    options: dict[str, Any] = {
        "size": size,
        "questions_per_scene": questions_per_scene,
        "video_clips": clips,
        "image_size": image_size,
        "video_size": video_size,
        "video_fps": video_fps,
        "video_seconds": video_seconds,
        "noise_snr_db": noise_snr_db,
    }
    _check_options(**options)
    voice_list = resolve_voices(voices)
    scenes = [sample_scene(np.random.default_rng([seed, SCENE_STREAM, i])) for i in range(size)]
    scene_rows, vqa_rows = _write_scenes(out, scenes, seed, voice_list, options)
    video_rows = _write_clips(out, seed, options)
    write_manifest(out / "scenes.jsonl", scene_rows, SCENES_SCHEMA)
    write_manifest(out / "vqa.jsonl", vqa_rows, VQA_SCHEMA)
    write_manifest(out / "video.jsonl", video_rows, VIDEO_SCHEMA)
    info = DatasetInfo(
        name="world",
        seed=seed,
        size=size,
        manifests={"scenes": "scenes.jsonl", "vqa": "vqa.jsonl", "video": "video.jsonl"},
        description=(build_world.__doc__ or "").strip(),
        params={
            **options,
            "voices": [v.key for v in voice_list],
            "answers": list(ANSWERS),
            "qtypes": list(QTYPES),
            "events": list(EVENTS),
            "shape_sounds": {s: {"wave": w, "hz": f} for s, (w, f) in SHAPE_SOUNDS.items()},
            "video_codec": video_codec(),
            "splits": list(SPLITS),
        },
    )
    info.write(out)
    return info


@dataclass(frozen=True)
class Utterance:
    """One line to speak: its text, WAV path (relative to ``out``), voice and global index."""

    text: str
    path: str
    voice: Voice
    index: int


def _utterances(
    captions: list[str], questions: list[list[Question]], voices: list[Voice], seed: int
) -> list[list[Utterance]]:
    """Per scene, its caption and then its questions, each with its own voice."""
    per_scene: list[list[Utterance]] = []
    index = 0
    for i, (text, asked) in enumerate(zip(captions, questions, strict=True)):
        named = [(text, "caption")] + [(q.text, f"q{j}") for j, q in enumerate(asked)]
        scene_lines = []
        for line, suffix in named:
            path = f"audio/scene-{i:05d}-{suffix}.wav"
            scene_lines.append(Utterance(line, path, voice_for(index, voices, seed), index))
            index += 1
        per_scene.append(scene_lines)
    return per_scene


def _write_scenes(
    out: Path, scenes: list[Scene], seed: int, voices: list[Voice], options: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Render, describe, question and speak every scene; returns the scenes and VQA rows."""
    captions = [
        caption(scene, np.random.default_rng([seed, CAPTION_STREAM, i]))
        for i, scene in enumerate(scenes)
    ]
    balancer = AnswerBalancer()
    per_scene = options["questions_per_scene"]
    questions = [
        ask(scene, per_scene, np.random.default_rng([seed, QUESTION_STREAM, i]), balancer)
        for i, scene in enumerate(scenes)
    ]
    splits = assign_splits(len(scenes), np.random.default_rng([seed, SPLIT_STREAM]))
    utterances = _utterances(captions, questions, voices, seed)
    scene_rows: list[dict[str, Any]] = []
    vqa_rows: list[dict[str, Any]] = []
    (out / "images").mkdir(parents=True, exist_ok=True)
    with Speaker(seed=seed, noise_snr_db=options["noise_snr_db"]) as speaker:
        for u in (u for lines in utterances for u in lines):
            speaker.request(u.text, u.voice)
        steps = zip(scenes, questions, splits, utterances, strict=True)
        for i, (scene, asked, split, lines) in enumerate(
            track(steps, "world: scenes", len(scenes))
        ):
            scene_id = f"scene-{i:05d}"
            image = f"images/{scene_id}.png"
            render_rng = np.random.default_rng([seed, RENDER_STREAM, i])
            render_scene(scene, options["image_size"], render_rng).save(out / image, format="PNG")
            for u in lines:
                speaker.write(out / u.path, u.text, u.voice, u.index)
            spoken_caption, spoken_questions = lines[0], lines[1:]
            scene_rows.append(
                {
                    "id": scene_id,
                    "split": split,
                    "image": image,
                    "caption": spoken_caption.text,
                    "caption_audio": spoken_caption.path,
                    "caption_voice": spoken_caption.voice.key,
                    "n_objects": len(scene.objects),
                    "scene": scene.to_dict(),
                }
            )
            for j, (q, u) in enumerate(zip(asked, spoken_questions, strict=True)):
                vqa_rows.append(
                    {
                        "id": f"{scene_id}-q{j}",
                        "split": split,
                        "scene_id": scene_id,
                        "image": image,
                        "question": q.text,
                        "question_audio": u.path,
                        "question_voice": u.voice.key,
                        "answer": q.answer,
                        "qtype": q.qtype,
                    }
                )
    return scene_rows, vqa_rows


def _write_clips(out: Path, seed: int, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Make the audio-visual clips; returns their manifest rows."""
    count, fps = options["video_clips"], options["video_fps"]
    schedule = event_schedule(count, np.random.default_rng([seed, EVENT_STREAM]))
    splits = assign_splits(count, np.random.default_rng([seed, CLIP_SPLIT_STREAM]))
    rows: list[dict[str, Any]] = []
    for k in track(range(count), "world: video", count):
        rng = np.random.default_rng([seed, CLIP_STREAM, k])
        shape, direction = schedule[k]
        clip = sample_clip(rng, shape, direction, options["video_seconds"])
        frames = render_frames(clip, options["video_size"], fps)
        audio = soundtrack(clip, SAMPLE_RATE, fps, rng)
        clip_id = f"clip-{k:05d}"
        write_mp4(out / "video" / f"{clip_id}.mp4", frames, fps, audio, SAMPLE_RATE)
        rows.append(
            {
                "id": clip_id,
                "split": splits[k],
                "video": f"video/{clip_id}.mp4",
                "event": clip.event,
                "shape": clip.sounding.shape,
                "direction": clip.sounding.direction,
                "colour": clip.sounding.colour,
                "sounding": clip.sounding.to_dict(),
                "distractor": clip.distractor.to_dict(),
                "sound_start_s": clip.start_s,
                "sound_end_s": clip.end_s,
                "fps": fps,
                "n_frames": len(frames),
            }
        )
    return rows
