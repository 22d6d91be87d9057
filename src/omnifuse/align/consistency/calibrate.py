"""Fit an aligned model's consistency calibration on world validation pairs, and score it.

:func:`calibrate` embeds the validation scenes of the model's world build with their true,
edited and other captions (:mod:`omnifuse.align.consistency.pairs`), fits each modality pair's
Platt scaling and threshold (:mod:`omnifuse.align.consistency.calibration`), and a text–image
one on the short statements questions presuppose ("a red circle"), and writes
``consistency.json`` beside the model. :func:`score_split` applies a calibration to another
split (the test split) and returns the same figures, which is what ``bench/consistency.py``
reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omnifuse.align.consistency.calibration import (
    PairCalibration,
    PairScores,
    calibrate_pair,
    figures,
    pair_key,
)
from omnifuse.align.consistency.checker import (
    Calibration,
    manifest_language,
    write_calibration,
)
from omnifuse.align.consistency.matcher import Matcher, has_matcher, load_matcher
from omnifuse.align.consistency.pairs import (
    CaseEmbeddings,
    embed_cases,
    modality_pairs,
    pair_scores,
    premise_scores,
    world_cases,
)
from omnifuse.align.model import AlignedModel, load_aligned, read_metrics
from omnifuse.errors import ConfigError, InvalidValueError

PREMISE_KEEP = 0.95
"""The premise check refuses a question only below the probability that keeps 95 % of the true
statements of the validation scenes: refusing a true premise costs more than answering a false
one (the reply is then checked against the notes as usual)."""


def training_manifest(folder: str | Path) -> Path:
    """The manifest the aligned model in ``folder`` was trained on (its metrics say)."""
    path = Path(str(read_metrics(folder).get("data", {}).get("manifest", "")))
    if not path.is_file():
        raise ConfigError(
            f"{folder}: its training manifest {path} is gone; give a world scenes manifest"
        )
    return path


def build_noise(manifest: Path) -> float | None:
    """The noise level the world build gave its speech (so spoken edits match it)."""
    info = json.loads((manifest.parent / "dataset.json").read_text(encoding="utf-8"))
    value = info.get("params", {}).get("noise_snr_db")
    return None if value is None else float(value)


def embed_split(
    model: AlignedModel,
    manifest: Path,
    split: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    matcher: Matcher | None = None,
) -> CaseEmbeddings:
    """The cases of ``split`` (the first ``limit`` scenes), embedded by ``model`` (and scored
    by its ``matcher``, when given; recordings transcribed with sentences of the manifest's
    train split as the recogniser's prompt)."""
    cases = world_cases(manifest, split, limit=limit, seed=seed)
    prompt = manifest_language(manifest, model)[1] if matcher is not None else None
    return embed_cases(
        model,
        cases,
        noise_snr_db=build_noise(manifest),
        matcher=matcher,
        speech_prompt=prompt,
    )


def scorer_of(embedded: CaseEmbeddings, a: str, b: str) -> str:
    """What pair ``a``–``b`` of these cases is scored by."""
    if pair_key(a, b) not in embedded.matched:
        return "cosine"
    return "transcript" if "audio" in (a, b) else "matcher"


def calibrate(
    folder: str | Path,
    *,
    manifest: str | Path | None = None,
    split: str = "val",
    limit: int | None = None,
    seed: int = 0,
    model: AlignedModel | None = None,
) -> Calibration:
    """Fit every modality pair of the aligned model in ``folder`` on ``split`` of its world
    manifest (or ``manifest``) and write ``consistency.json`` into the folder. The text–image
    pair (and the premise check) read the folder's matcher when it has one. A pair whose
    matching pairs are not more similar than the mismatching ones is left out (``source``
    says why); :class:`~omnifuse.errors.InvalidValueError` when no pair is left."""
    started = time.perf_counter()
    path = Path(manifest) if manifest is not None else training_manifest(folder)
    model = model or load_aligned(folder)
    matcher = load_matcher(folder) if has_matcher(folder) else None
    embedded = embed_split(model, path, split, limit=limit, seed=seed, matcher=matcher)
    pairs = {}
    skipped: dict[str, str] = {}
    for a, b in modality_pairs(model):
        scorer = scorer_of(embedded, a, b)
        try:
            fitted = calibrate_pair(a, b, pair_scores(embedded, a, b), scorer=scorer)
        except InvalidValueError as err:  # this pair cannot be told apart; the others may
            skipped[f"{a}–{b}"] = str(err)
            continue
        pairs[fitted.key] = fitted
    if not pairs:
        raise InvalidValueError(f"no modality pair could be calibrated: {skipped}")
    source: dict[str, Any] = {
        "manifest": str(path),
        "split": split,
        "scenes": len(embedded.image),
        "seed": seed,
        **({"skipped": skipped} if skipped else {}),
    }
    premise = None
    if {"text", "image"} <= set(model.modalities):
        scores = premise_scores(model, path, split, limit=limit, seed=seed, matcher=matcher)
        try:
            premise = calibrate_pair("text", "image", scores, keep=PREMISE_KEEP, scorer="matcher")
        except InvalidValueError as err:
            source.setdefault("skipped", {})["premise"] = str(err)
    source["seconds"] = round(time.perf_counter() - started, 2)
    calibration = Calibration(pairs, source, premise)
    write_calibration(folder, calibration)
    return calibration


def score_split(
    model: AlignedModel,
    calibration: Calibration,
    manifest: str | Path,
    split: str = "test",
    *,
    limit: int | None = None,
    seed: int = 0,
    matcher: Matcher | None = None,
) -> dict[str, dict[str, Any]]:
    """Per calibrated pair (``"image–text"``), the figures of ``split`` under ``calibration``:
    AUROC against edits (all, and per kind) and other scenes' captions, ECE, balanced
    accuracy at the threshold. ``matcher``: the model's, for pairs calibrated on its logits."""
    reads_matcher = [p for p in calibration.pairs.values() if p.scorer != "cosine"]
    if reads_matcher and matcher is None:
        raise ConfigError("this calibration reads the aligned model's matcher; pass it")
    embedded = embed_split(model, Path(manifest), split, limit=limit, seed=seed, matcher=matcher)
    out: dict[str, dict[str, Any]] = {}
    for (a, b), pair in calibration.pairs.items():
        out[f"{a}–{b}"] = scored(pair_scores(embedded, a, b), pair)
    if calibration.premise is not None:
        premise = calibration.premise
        scores = premise_scores(
            model,
            manifest,
            split,
            limit=limit,
            seed=seed,
            matcher=matcher if premise.scorer == "matcher" else None,
        )
        out["premise"] = scored(scores, premise)
    return out


def scored(scores: PairScores, pair: PairCalibration) -> dict[str, Any]:
    """The figures of ``scores`` under a pair's calibration (its blend of cosine and matcher)."""
    blended = PairScores(
        pair.score(scores.similarity, 0.0 if scores.matched is None else scores.matched),
        scores.labels,
        scores.kinds,
        scores.weights,
    )
    return figures(blended, pair.platt, pair.threshold)
