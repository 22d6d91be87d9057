"""Matching and mismatching pairs from a ``world`` build, embedded by an aligned model.

For every scene of a split: its image, its own caption and spoken caption (the true pair), one
caption per one-attribute edit that applies (:mod:`omnifuse.data.world.edits`: a colour, a
shape, a count or a relation changed; hard negatives), and another scene's caption (an easy
negative). A spoken edited caption is synthesised in the voice of the scene's own recording,
so the voice never gives a negative away. Every modality pair of the model is scored on the
same scenes: image–caption, image–speech and caption–speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.align.consistency.calibration import PairScores, pair_key
from omnifuse.align.consistency.matcher import Matcher, heard_text, match_logits
from omnifuse.align.model import AlignedModel
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.edits import (
    SWAP_KINDS,
    dataset_seed,
    premise_statements,
    row_plan,
    swapped_captions,
)
from omnifuse.data.world.scene import Scene
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.speech.asr import create_asr

EDIT_STREAM = 40
PREMISE_STREAM = 42
OTHER = "other"
OWN = "own"


@dataclass(frozen=True)
class Description:
    """A caption offered for a scene: its ``kind`` (``own``, an edit kind, or ``other``), its
    text, and its recording (a path) or the voice to speak it in."""

    kind: str
    text: str
    spoken: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class SceneCase:
    """One scene's image and the descriptions it is paired with, its own first."""

    name: str
    image: str
    descriptions: tuple[Description, ...]


def world_cases(
    manifest: str | Path,
    split: str,
    *,
    kinds: Sequence[str] = SWAP_KINDS,
    limit: int | None = None,
    seed: int = 0,
) -> list[SceneCase]:
    """The scenes of ``split`` of a world ``scenes`` manifest, each with its descriptions
    (``limit``: the first scenes only); ``seed`` picks the edits and the other scene."""
    path = Path(manifest)
    world_seed = dataset_seed(path.parent)
    rows = load_manifest(path).split(split)[:limit]
    if len(rows) < 2:
        raise ConfigError(f"split {split!r} of {path} has fewer than 2 scenes")
    captions = [str(r["caption"]) for r in rows]
    cases = []
    for i, row in enumerate(rows):
        scene, plan = row_plan(row, world_seed)
        index = int(str(row["id"]).rsplit("-", 1)[1])
        rng = np.random.default_rng([seed, EDIT_STREAM, index])
        voice = row.get("caption_voice")
        own = Description(OWN, captions[i], row.get("caption_audio"), voice)
        edits = [
            Description(kind, text, None, voice)
            for kind, (text, _) in swapped_captions(scene, plan, rng, tuple(kinds)).items()
        ]
        others = [j for j in range(len(rows)) if captions[j] != captions[i]]
        j = others[int(rng.integers(len(others)))]
        other = Description(OTHER, captions[j], rows[j].get("caption_audio"), voice)
        cases.append(SceneCase(str(row["id"]), str(row["image"]), (own, *edits, other)))
    return cases


@dataclass
class CaseEmbeddings:
    """Unit vectors of the cases: ``image`` (S, D); per description, in case order, ``text``
    and ``audio`` (M, D) when the model embeds them; ``scene`` (M,) the case of each
    description and ``kinds`` its kind."""

    image: np.ndarray
    scene: np.ndarray
    kinds: list[str]
    text: np.ndarray | None = None
    audio: np.ndarray | None = None
    modalities: tuple[str, ...] = field(default_factory=tuple)
    matched: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    """Per modality pair a matcher reads, its logit for each description with its scene's
    image (in description order): blended with the cosine similarity. For audio–image, the
    logit of the recording's transcript."""

    def of(self, modality: str) -> np.ndarray:
        vectors = {"image": self.image, "text": self.text, "audio": self.audio}.get(modality)
        if vectors is None:
            raise ConfigError(f"these cases hold no {modality} embeddings")
        return vectors


def embed_cases(
    model: AlignedModel,
    cases: Sequence[SceneCase],
    *,
    noise_snr_db: float | None = None,
    batch_size: int = 32,
    matcher: Matcher | None = None,
    speech_prompt: str | None = None,
) -> CaseEmbeddings:
    """Embed the images, captions and (when the model hears) recordings of ``cases``; edited
    captions are spoken in the scene's voice (with the build's noise level, if any). With a
    ``matcher``, every caption is also scored with its scene's image by it, and so is every
    recording's transcript (the recogniser prompted with ``speech_prompt``)."""
    described = [(i, d) for i, case in enumerate(cases) for d in case.descriptions]
    out = CaseEmbeddings(
        image=_embed_unique(model, "image", [c.image for c in cases], batch_size),
        scene=np.array([i for i, _ in described], dtype=np.int64),
        kinds=[d.kind for _, d in described],
        modalities=tuple(model.modalities),
    )
    if "text" in model.modalities:
        out.text = _embed_unique(model, "text", [d.text for _, d in described], batch_size)
    waves = None
    if "audio" in model.modalities:
        waves = spoken([d for _, d in described], noise_snr_db=noise_snr_db)
        out.audio = model.embed("audio", waves, batch_size=batch_size)
    if matcher is not None:
        of_scene = [cases[i].image for i, _ in described]
        texts = [d.text for _, d in described]
        out.matched[pair_key("text", "image")] = match_logits(matcher, model, texts, of_scene)
        if waves is not None:
            asr = create_asr()
            heard = [
                heard_text(asr, w, speech_prompt) for w in track(waves, "transcribing descriptions")
            ]
            out.matched[pair_key("audio", "image")] = match_logits(matcher, model, heard, of_scene)
    return out


def _embed_unique(
    model: AlignedModel, modality: str, raws: Sequence[Any], batch_size: int
) -> np.ndarray:
    """Embeddings of ``raws`` in order, each distinct value embedded once."""
    unique = list(dict.fromkeys(raws))
    vectors = model.embed(modality, unique, batch_size=batch_size)
    where = {value: i for i, value in enumerate(unique)}
    return vectors[[where[value] for value in raws]]


def spoken(descriptions: Sequence[Description], *, noise_snr_db: float | None = None) -> list[Any]:
    """Each description as audio: its recording's path, or it spoken now in its voice as a
    ``(wave, 16000)`` pair."""
    from omnifuse.data.world.spoken import Speaker
    from omnifuse.speech.tts import SAMPLE_RATE, Voice

    out: list[Any] = []
    with Speaker(seed=0, noise_snr_db=noise_snr_db) as speaker:
        for d in descriptions:
            if d.spoken is None:
                speaker.request(d.text, _voice(d, Voice))
        for index, d in enumerate(track(descriptions, "speaking edited captions")):
            if d.spoken is not None:
                out.append(d.spoken)
            else:
                out.append((speaker.wave(d.text, _voice(d, Voice), index), SAMPLE_RATE))
    return out


def _voice(description: Description, voice: Any) -> Any:
    return voice.from_key(description.voice) if description.voice else voice()


def pair_scores(embeddings: CaseEmbeddings, a: str, b: str) -> PairScores:
    """The similarities of modality pair ``a``–``b`` over the cases. With the image on one
    side, the image meets each description (own, edits, other); between captions and speech,
    the scene's own written caption meets each spoken description."""
    first, second = pair_key(a, b)
    labels = np.array([k == OWN for k in embeddings.kinds], dtype=np.int64)
    negatives = np.bincount(embeddings.scene, weights=1 - labels)
    weights = np.where(labels == 1, 1.0, 1.0 / np.maximum(negatives[embeddings.scene], 1))
    if "image" in (first, second):
        other = second if first == "image" else first
        anchor = embeddings.image[embeddings.scene]
        candidates = embeddings.of(other)
    else:
        own = np.array([k == OWN for k in embeddings.kinds])
        own_index = np.flatnonzero(own)  # one per scene, in scene order
        anchor = embeddings.of("text")[own_index][embeddings.scene]
        candidates = embeddings.of("audio")
    similarity = np.einsum("nd,nd->n", anchor, candidates).astype(np.float64)
    matched = embeddings.matched.get((first, second))
    return PairScores(similarity, labels, list(embeddings.kinds), weights, matched)


def modality_pairs(model: AlignedModel) -> list[tuple[str, str]]:
    """The pairs of the model's modalities a world case can score (image, text, audio)."""
    known = [m for m in ("image", "text", "audio") if m in model.modalities]
    return [pair_key(a, b) for i, a in enumerate(known) for b in known[i + 1 :]]


def premise_scores(
    model: AlignedModel,
    manifest: str | Path,
    split: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    matcher: Matcher | None = None,
) -> PairScores:
    """Statements a question may presuppose (:func:`~omnifuse.data.world.edits.
    premise_statements`: each object alone, true or with its colour or shape changed) against
    the images of ``split``; each scene's true statements share weight 1, and so do its false
    ones. With a ``matcher``, its logits too."""
    rows = load_manifest(Path(manifest)).split(split)[:limit]
    if not rows:
        raise ConfigError(f"split {split!r} of {manifest} has no scenes")
    owners: list[int] = []
    texts: list[str] = []
    labels: list[int] = []
    kinds: list[str] = []
    for i, row in enumerate(rows):
        index = int(str(row["id"]).rsplit("-", 1)[1])
        rng = np.random.default_rng([seed, PREMISE_STREAM, index])
        for text, true, kind in premise_statements(Scene.from_dict(row["scene"]), rng):
            owners.append(i)
            texts.append(text)
            labels.append(int(true))
            kinds.append(OWN if true else kind)
    scene = np.asarray(owners)
    pictures = [str(r["image"]) for r in rows]
    images = _embed_unique(model, "image", pictures, 32)
    statements = _embed_unique(model, "text", texts, 32)
    similarity = np.einsum("nd,nd->n", images[scene], statements).astype(np.float64)
    matched = None
    if matcher is not None:
        matched = match_logits(matcher, model, texts, [pictures[i] for i in owners])
    y = np.asarray(labels, dtype=np.int64)
    true_count = np.bincount(scene, weights=y)
    false_count = np.bincount(scene, weights=1 - y)
    weights = np.where(y == 1, 1.0 / true_count[scene], 1.0 / np.maximum(false_count[scene], 1))
    return PairScores(similarity, y, kinds, weights, matched)
