"""``ConsistencyChecker``: do a text, an image and a recording describe the same thing?

Each pair of inputs is embedded by the aligned model, its cosine similarity turned into a
probability by the pair's calibration (``consistency.json`` beside the model, written by
:func:`~omnifuse.align.consistency.calibrate.calibrate`), and compared with the pair's
threshold. The inputs are consistent when every pair is: the overall probability is the
least of the pairs' (all of them must describe one thing, so the weakest pair decides), and
the overall verdict is "consistent" only when no pair falls below its threshold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.align.consistency.calibration import PairCalibration, pair_key
from omnifuse.align.consistency.matcher import (
    Matcher,
    has_matcher,
    heard_text,
    load_matcher,
    match_logits,
    speech_prompt,
)
from omnifuse.align.model import AlignedModel, load_aligned, read_metrics
from omnifuse.errors import ConfigError, InvalidValueError, MissingModalityError
from omnifuse.fileio import write_json_atomic
from omnifuse.speech.asr import ASR, create_asr

CALIBRATION_FILE = "consistency.json"
FORMAT = "omnifuse-consistency/1"
MODALITIES = ("text", "image", "audio")


class NotCalibratedError(ConfigError):
    """An aligned model folder without a consistency calibration."""


@dataclass(frozen=True)
class Calibration:
    """Every calibrated modality pair of one aligned model, and where it was fitted."""

    pairs: dict[tuple[str, str], PairCalibration]
    source: dict[str, Any] = field(default_factory=dict)
    premise: PairCalibration | None = None
    """Text–image, fitted on the short statements a question presupposes ("a red circle")
    rather than whole captions: what the assistant's premise check reads."""

    def pair(self, a: str, b: str) -> PairCalibration:
        key = pair_key(a, b)
        if key not in self.pairs:
            known = ", ".join(f"{x}–{y}" for x, y in self.pairs) or "none"
            raise MissingModalityError(
                f"no calibration for {key[0]}–{key[1]} (calibrated pairs: {known})",
                modality=key[1],
            )
        return self.pairs[key]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "source": self.source,
            "pairs": [p.to_dict() for p in self.pairs.values()],
        }
        if self.premise is not None:
            out["premise"] = self.premise.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != FORMAT:
            raise ConfigError(f"not a consistency calibration (format {data.get('format')!r})")
        pairs = [PairCalibration.from_dict(p) for p in data.get("pairs") or []]
        if not pairs:
            raise ConfigError("the consistency calibration holds no pairs")
        premise = data.get("premise")
        return cls(
            {p.key: p for p in pairs},
            dict(data.get("source") or {}),
            None if premise is None else PairCalibration.from_dict(premise),
        )


def write_calibration(folder: str | Path, calibration: Calibration) -> Path:
    """Write ``consistency.json`` into the aligned model's folder (atomically)."""
    path = Path(folder) / CALIBRATION_FILE
    write_json_atomic(path, calibration.to_dict())
    return path


def read_calibration(folder: str | Path) -> Calibration:
    """The calibration beside an aligned model; :class:`NotCalibratedError` when absent."""
    import json

    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        raise NotCalibratedError(
            f"{folder} has no {CALIBRATION_FILE}; write one with "
            f"`omnifuse consistency calibrate --align {folder}`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    try:
        return Calibration.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


@dataclass(frozen=True)
class PairVerdict:
    """One pair of inputs: cosine similarity, calibrated probability, threshold, verdict;
    ``scorer`` what the probability was calibrated on and ``score`` its value (the cosine
    similarity again, or its calibrated blend with the matcher's logit)."""

    a: str
    b: str
    similarity: float
    probability: float
    threshold: float
    scorer: str = "cosine"
    score: float | None = None
    heard: str | None = None
    """For a recording matched through its transcript: what the recogniser heard."""

    @property
    def consistent(self) -> bool:
        return self.probability >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "similarity": round(self.similarity, 6),
            "probability": round(self.probability, 6),
            "threshold": round(self.threshold, 6),
            "scorer": self.scorer,
            "score": round(self.similarity if self.score is None else self.score, 6),
            "verdict": verdict(self.consistent),
            **({} if self.heard is None else {"heard": self.heard}),
        }


def verdict(consistent: bool) -> str:
    return "consistent" if consistent else "inconsistent"


@dataclass(frozen=True)
class ConsistencyResult:
    """Every pair's verdict; ``probability`` the least pair probability, ``consistent`` only
    when every pair is."""

    pairs: tuple[PairVerdict, ...]

    @property
    def probability(self) -> float:
        return min(p.probability for p in self.pairs)

    @property
    def consistent(self) -> bool:
        return all(p.consistent for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": [p.to_dict() for p in self.pairs],
            "probability": round(self.probability, 6),
            "verdict": verdict(self.consistent),
        }


class ConsistencyChecker:
    """An aligned model with its calibration (and its matcher, for the pairs calibrated on
    the matcher's logits): :meth:`check` scores raw inputs by modality."""

    def __init__(
        self,
        model: AlignedModel,
        calibration: Calibration,
        vocabulary: frozenset[str] | None = None,
        matcher: Matcher | None = None,
        speech_prompt: str | None = None,
    ) -> None:
        reads = [p for p in (*calibration.pairs.values(), calibration.premise) if p is not None]
        if matcher is None and any(p.scorer != "cosine" for p in reads):
            raise NotCalibratedError(
                "this consistency calibration reads the aligned model's matcher, which is "
                "missing (matcher.json / matcher.safetensors); calibrate the model again"
            )
        self.model = model
        self.calibration = calibration
        self.vocabulary = vocabulary
        self.matcher = matcher
        self.speech_prompt = speech_prompt
        self._asr: ASR | None = None

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu") -> ConsistencyChecker:
        """The aligned model in ``folder``, its ``consistency.json``, its matcher when it has
        one, and the words and sentences of the texts it was trained on (``vocabulary`` and
        the recogniser's ``speech_prompt``: None when its manifest is gone)."""
        read_calibration(folder)  # before the model loads: say at once when there is none
        return cls.for_model(load_aligned(folder, device=device), folder)

    @classmethod
    def for_model(cls, model: AlignedModel, folder: str | Path) -> ConsistencyChecker:
        """A checker of an aligned model already loaded from ``folder``, with the folder's
        calibration, matcher, training vocabulary and speech prompt."""
        calibration = read_calibration(folder)
        matcher = load_matcher(folder) if has_matcher(folder) else None
        manifest = read_metrics(folder).get("data", {}).get("manifest")
        vocabulary, prompt = manifest_language(manifest, model)
        return cls(model, calibration, vocabulary, matcher, prompt)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.model.modalities)

    def check(self, inputs: Mapping[str, Any]) -> ConsistencyResult:
        """``{"text": "...", "image": path or PIL image, "audio": path or (wave, rate)}`` —
        two or more — → every pair's verdict. Inputs are embedded by the aligned model."""
        given = {m: v for m, v in inputs.items() if v is not None}
        self.require(given)
        vectors = {m: self.model.embed(m, [raw])[0] for m, raw in given.items()}
        return self.check_embedded(vectors, given)

    def require(self, inputs: Mapping[str, Any]) -> None:
        """Refuse fewer than two inputs, or one the model (or its calibration) cannot read."""
        if len(inputs) < 2:
            raise InvalidValueError(
                f"consistency compares two or more inputs; got {len(inputs)} "
                f"({', '.join(inputs) or 'none'})"
            )
        for modality in inputs:
            if modality not in self.modalities:
                raise MissingModalityError(
                    f"this aligned model embeds {', '.join(self.modalities)}; not {modality!r}",
                    modality=modality,
                )
        names = list(inputs)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                self.calibration.pair(a, b)

    def check_embedded(
        self, vectors: Mapping[str, np.ndarray], raws: Mapping[str, Any] | None = None
    ) -> ConsistencyResult:
        """Verdicts of unit vectors already in the aligned space, by modality; a pair
        calibrated on the matcher's logits is scored from its decoded ``raws``."""
        self.require(vectors)
        names = [m for m in MODALITIES if m in vectors]
        verdicts = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pair = self.calibration.pair(a, b)
                similarity = float(np.dot(vectors[a], vectors[b]))
                logit, heard = 0.0, None
                if pair.scorer != "cosine":
                    if raws is None or a not in raws or b not in raws:
                        raise InvalidValueError(f"the {a}–{b} matcher needs the inputs themselves")
                    if pair.scorer == "transcript":
                        heard = heard_text(self.asr, raws["audio"], self.speech_prompt)
                    text = raws["text"] if heard is None else heard
                    logit = self.match([text], raws["image"])[0]
                score = float(pair.score(similarity, logit))
                probability = float(pair.platt.probability(score))
                verdicts.append(
                    PairVerdict(
                        a, b, similarity, probability, pair.threshold, pair.scorer, score, heard
                    )
                )
        return ConsistencyResult(tuple(verdicts))

    @property
    def asr(self) -> ASR:
        """The speech recogniser that transcribes recordings for the matcher (built once)."""
        if self._asr is None:
            self._asr = create_asr()
        return self._asr

    def match(self, texts: Sequence[str], image: Any) -> list[float]:
        """The matcher's logit for each text describing ``image`` (its tokens read once)."""
        if self.matcher is None:
            raise NotCalibratedError("this aligned model has no matcher")
        logits = match_logits(self.matcher, self.model, list(texts), [image] * len(texts))
        return [float(x) for x in logits]

    def text_image(self, texts: Sequence[str], image: Any) -> list[tuple[float, float]]:
        """(probability, threshold) of each text describing ``image`` (embedded once) under
        the premise calibration (the text–image one when there is none): the assistant's
        premise check."""
        pair = self.calibration.premise or self.calibration.pair("text", "image")
        picture = self.model.embed("image", [image])[0]
        similarity = self.model.embed("text", list(texts)) @ picture
        logits = self.match(texts, image) if pair.scorer == "matcher" else 0.0
        scores = pair.score(similarity, logits)
        return [(float(p), pair.threshold) for p in pair.platt.probability(scores)]


def manifest_language(
    manifest: Any, model: AlignedModel
) -> tuple[frozenset[str] | None, str | None]:
    """The lower-case words of the model's text column in ``manifest`` (every split), and the
    recogniser's prompt for recordings this model hears: sentences of that column in the
    ``train`` split (:func:`speech_prompt`). (None, None) when the model reads no text or the
    manifest cannot be read; the manifest is read once for both."""
    from omnifuse.data.manifest import load_manifest
    from omnifuse.errors import OmnifuseError

    if "text" not in model.specs or manifest is None:
        return None, None
    try:
        loaded = load_manifest(str(manifest), check_files=False)
    except (OSError, TypeError, ValueError, OmnifuseError):
        return None, None
    column = model.specs["text"].column
    texts = [str(row.get(column, "")) for row in loaded.samples]
    words = {w for text in texts for w in re.findall(r"[a-z]+", text.lower())}
    prompt = speech_prompt([str(row.get(column, "")) for row in loaded.split("train")])
    return frozenset(words) or None, prompt
