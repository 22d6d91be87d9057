"""Perception to text: what an image, a recording or a video holds, as notes an LLM can read.

A text-only language model cannot see or hear, so the :class:`Perceiver` runs the perception
models first and writes down what they found:

- image: the everyday categories the EfficientNet-Lite0 ImageNet probabilities add up to
  (:mod:`omnifuse.assistant.wordnet`: "cat 93%" where the top labels are three cat breeds), the
  top-k labels themselves, the named dominant colours and where they lie
  (:mod:`omnifuse.assistant.colours`), the people whose faces are seen and where
  (:mod:`omnifuse.assistant.faces`; nothing is said when none is found, since a missed face is
  no proof that nobody is there), the text read by OCR (rapidocr, PP-OCRv4) line by line in
  reading order and, when a captioner is given (anything with ``.caption(images) -> list[str]``,
  such as a trained projector captioner), its caption;
- audio: the speech transcript (default engine: faster-whisper);
- video: the labels of a few frames spread over the clip and the soundtrack's transcript.

:meth:`PerceptionContext.to_prompt` renders the result as a compact block of notes, one line per
input. Every model loads on first use, so a perceiver that only hears never loads a vision model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from PIL import Image

from omnifuse.assistant.colours import ColourAnalysis, analyse_colours
from omnifuse.assistant.faces import Face, FaceDetector, describe_faces
from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.io.image import load_image
from omnifuse.io.limits import DecodeLimits
from omnifuse.io.video import load_video
from omnifuse.speech.asr import ASR, Transcript, create_asr

if TYPE_CHECKING:
    from collections.abc import Iterable

Label = tuple[str, float]
SILENCE_PEAK = 1e-3
"""A soundtrack whose samples never exceed this is treated as silent and not transcribed."""
_SPACES = re.compile(r"\s+")


class ImageCaptioner(Protocol):
    """Anything that captions images (e.g. :func:`omnifuse.projector.captioning.load_captioner`)."""

    def caption(self, images: Sequence[Any]) -> list[str]: ...


class ImageClassifier(Protocol):
    """Anything that labels images with ``(name, probability)`` pairs, most probable first."""

    def classify(self, images: Sequence[Any], k: int = 5) -> list[list[Label]]: ...


class ImageNetLogits(Protocol):
    """A classifier that also gives its raw ImageNet-1k logits, (N, 1000), whose probabilities
    can be folded into WordNet categories (EfficientNet-Lite0 is one)."""

    def logits(self, images: Sequence[Any]) -> torch.Tensor: ...


OcrReader = Callable[[Image.Image], list[str]]
"""Reads the text lines of an image, in reading order."""


@dataclass(frozen=True)
class ImagePerception:
    """What was seen in one image: everyday categories (``objects``), the classifier's own
    labels, the caption, the named colours, the text read in it and the faces found (None when
    nobody looked for faces)."""

    labels: list[Label] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    caption: str | None = None
    objects: list[Label] = field(default_factory=list)
    colours: ColourAnalysis | None = None
    faces: list[Face] | None = None

    @property
    def people(self) -> int | None:
        """How many people's faces were seen; None when faces were not looked for. Zero means
        none was found, not that nobody is there."""
        return None if self.faces is None else len(self.faces)

    def to_prompt(self) -> str:
        """The notes of this image. The fine ImageNet labels are left out when they fold into
        an everyday category: a small LM shown "cat 93%; labels: tiger cat 38%" answers "a
        tiger". They stay in :attr:`labels` (and ``ask --json``)."""
        parts = []
        if self.objects:
            parts.append(f"objects: {format_labels(self.objects)}")
        if self.faces:
            parts.append(f"people: {describe_faces(self.faces)}")
        if self.caption:
            parts.append(f"caption: {self.caption}")
        if self.labels and not self.objects:
            parts.append(f"labels: {format_labels(self.labels)}")
        if self.colours is not None and (self.colours.colours or self.colours.background):
            parts.append(f"colours: {self.colours.to_prompt()}")
        if self.text:
            parts.append("text in image: " + ", ".join(f'"{line}"' for line in self.text))
        return "; ".join(parts) or "nothing recognised"


@dataclass(frozen=True)
class FramePerception:
    """The labels of one video frame, ``time_s`` seconds into the clip, and the everyday
    categories they add up to."""

    time_s: float
    labels: list[Label]
    objects: list[Label] = field(default_factory=list)

    @property
    def summary(self) -> str | None:
        """The frame's first category, or its top label when no category holds."""
        best = self.objects or self.labels
        return best[0][0] if best else None


@dataclass(frozen=True)
class VideoPerception:
    """What was seen in sampled frames of a clip and heard on its soundtrack."""

    duration_s: float
    frames: list[FramePerception] = field(default_factory=list)
    transcript: Transcript | None = None
    caption: str | None = None

    def to_prompt(self) -> str:
        parts = [f"{self.duration_s:.1f} s"]
        if self.caption:
            parts.append(f"caption: {self.caption}")
        if self.frames:
            frames = ", ".join(f"{f.time_s:.1f} s {f.summary}" for f in self.frames if f.summary)
            parts.append(f"frames: {frames}")
        speech = self.transcript.text if self.transcript else ""
        parts.append(f'soundtrack: "{speech}"' if speech else "soundtrack: no speech")
        return "; ".join(parts)


@dataclass(frozen=True)
class PerceptionContext:
    """Everything perceived for one question; absent inputs stay None."""

    image: ImagePerception | None = None
    speech: Transcript | None = None
    video: VideoPerception | None = None

    @property
    def is_empty(self) -> bool:
        return self.image is None and self.speech is None and self.video is None

    @property
    def transcript(self) -> str | None:
        """The text of the speech recording, if one was perceived."""
        return self.speech.text if self.speech is not None else None

    def to_prompt(self) -> str:
        """One line per input: ``Image: ...``, ``Speech: "..."``, ``Video: ...``."""
        lines = []
        if self.image is not None:
            lines.append(f"Image: {self.image.to_prompt()}")
        if self.speech is not None:
            lines.append(f'Speech: "{self.speech.text}"' if self.speech.text else "Speech: none")
        if self.video is not None:
            lines.append(f"Video: {self.video.to_prompt()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_labels(labels: Sequence[Label]) -> str:
    """``tiger cat 38%, Egyptian cat 37%``: names with rounded probabilities."""
    return ", ".join(f"{name} {round(100 * p)}%" for name, p in labels)


def keep_labels(labels: Sequence[Label], min_prob: float) -> list[Label]:
    """Labels at or above ``min_prob``; the most probable one is always kept."""
    return [lab for i, lab in enumerate(labels) if i == 0 or lab[1] >= min_prob]


class RapidOcrReader:
    """PP-OCRv4 through rapidocr-onnxruntime. Lines below ``min_score``, and lines without a
    letter or digit (shapes read as symbols), are dropped."""

    def __init__(self, min_score: float = 0.5) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise MissingDependencyError("OCR (rapidocr-onnxruntime)", extra="llm") from None
        self.engine = RapidOCR()
        self.min_score = min_score

    def __call__(self, image: Image.Image) -> list[str]:
        found, _ = self.engine(image)
        boxes = []
        for corners, text, score in found or []:
            clean = _SPACES.sub(" ", str(text)).strip()
            if float(score) >= self.min_score and any(c.isalnum() for c in clean):
                xs, ys = [float(p[0]) for p in corners], [float(p[1]) for p in corners]
                boxes.append(TextBox(min(xs), min(ys), max(xs), max(ys), clean))
        return reading_order(boxes)


@dataclass(frozen=True)
class TextBox:
    """A piece of text read in an image and its bounding box, in pixels (``y`` downwards)."""

    left: float
    top: float
    right: float
    bottom: float
    text: str

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1e-6)


def reading_order(boxes: Iterable[TextBox], min_overlap: float = 0.5) -> list[str]:
    """The text of ``boxes`` as lines, top to bottom, each read left to right.

    A box joins a line when their vertical spans overlap by at least ``min_overlap`` of the
    lower of the two heights, so words on one line whose tops differ (a capital, a slanted
    photo) stay together, and a line is never split by a word a few pixels higher.
    """
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        for line in lines:
            top, bottom = min(b.top for b in line), max(b.bottom for b in line)
            overlap = min(bottom, box.bottom) - max(top, box.top)
            if overlap >= min_overlap * min(bottom - top, box.height):
                line.append(box)
                break
        else:
            lines.append([box])
    lines.sort(key=lambda line: min(b.top for b in line))
    return [" ".join(b.text for b in sorted(line, key=lambda b: b.left)) for line in lines]


class Perceiver:
    """Turns images, recordings and videos into a :class:`PerceptionContext`.

    ``classifier``/``ocr``/``asr`` default to EfficientNet-Lite0, rapidocr and faster-whisper,
    each loaded when first needed; pass ``ocr=False`` to skip reading text. A classifier with
    ImageNet ``logits`` also yields everyday categories (``objects=False`` skips them),
    ``colours=False`` skips the colour analysis and ``faces=False`` the face detection (or pass
    a configured :class:`~omnifuse.assistant.faces.FaceDetector`).
    """

    def __init__(
        self,
        *,
        classifier: ImageClassifier | None = None,
        ocr: OcrReader | bool = True,
        asr: ASR | None = None,
        captioner: ImageCaptioner | None = None,
        top_k: int = 3,
        min_label_prob: float = 0.05,
        video_frames: int = 4,
        limits: DecodeLimits | None = None,
        objects: bool = True,
        colours: bool = True,
        faces: FaceDetector | bool = True,
    ) -> None:
        if not 1 <= top_k <= 1000 or video_frames < 1:
            raise ConfigError("top_k must be in [1, 1000] and video_frames ≥ 1")
        self._classifier = classifier
        self._ocr: OcrReader | None = ocr if callable(ocr) else None
        self.use_ocr = ocr is not False
        self._asr = asr
        self.captioner = captioner
        self.top_k = top_k
        self.min_label_prob = min_label_prob
        self.video_frames = video_frames
        self.limits = limits
        self.use_objects = objects
        self.use_colours = colours
        self.faces: FaceDetector | None = (
            faces if isinstance(faces, FaceDetector) else FaceDetector() if faces else None
        )

    @property
    def classifier(self) -> ImageClassifier:
        if self._classifier is None:
            from omnifuse.encoders import create

            self._classifier = cast(ImageClassifier, create("effnet-lite0"))
        return self._classifier

    @property
    def ocr(self) -> OcrReader:
        if self._ocr is None:
            self._ocr = RapidOcrReader()
        return self._ocr

    @property
    def asr(self) -> ASR:
        if self._asr is None:
            self._asr = create_asr()
        return self._asr

    def perceive(
        self, *, image: Any = None, audio: Any = None, video: Any = None
    ) -> PerceptionContext:
        """Perceive whichever inputs are given (paths, bytes, PIL images, ``(wave, rate)``)."""
        return PerceptionContext(
            image=None if image is None else self.see(image),
            speech=None if audio is None else self.hear(audio),
            video=None if video is None else self.watch(video),
        )

    def see(self, raw_image: Any) -> ImagePerception:
        """Categories, labels, colours, faces, OCR text and caption of one image."""
        image = load_image(raw_image, limits=self.limits)
        ((labels, objects),) = self._classify([image])
        return ImagePerception(
            labels=labels,
            text=self.ocr(image) if self.use_ocr else [],
            caption=self._caption(image),
            objects=objects,
            colours=analyse_colours(image) if self.use_colours else None,
            faces=self.faces.detect(image) if self.faces is not None else None,
        )

    def _classify(self, images: Sequence[Image.Image]) -> list[tuple[list[Label], list[Label]]]:
        """Each image's kept top-k labels and the everyday categories its probabilities fold
        into (none when the classifier gives no ImageNet logits or folding is off)."""
        classifier = self.classifier
        if not (self.use_objects and hasattr(classifier, "logits")):
            found = classifier.classify(images, k=self.top_k)
            return [(keep_labels(labels, self.min_label_prob), []) for labels in found]
        from omnifuse.assistant.wordnet import fold_labels
        from omnifuse.encoders.imagenet import top_k_labels

        logits = cast(ImageNetLogits, classifier).logits(images)
        probs = logits.float().softmax(dim=-1)
        return [
            (keep_labels(labels, self.min_label_prob), fold_labels(row.numpy()))
            for labels, row in zip(top_k_labels(logits, self.top_k), probs, strict=True)
        ]

    def hear(self, raw_audio: Any) -> Transcript:
        """The transcript of a recording."""
        return self.asr.transcribe(raw_audio)

    def watch(self, raw_video: Any) -> VideoPerception:
        """Labels of evenly spaced frames, a caption of the middle one, the soundtrack's words."""
        clip = load_video(raw_video, num_frames=self.video_frames, limits=self.limits)
        images = [Image.fromarray(frame) for frame in clip.frames]
        frames = [
            FramePerception(float(t), labels, objects)
            for t, (labels, objects) in zip(
                clip.frame_times.tolist(), self._classify(images), strict=True
            )
        ]
        return VideoPerception(
            duration_s=float(clip.duration_s),
            frames=frames,
            transcript=self._soundtrack(clip.audio, clip.sample_rate),
            caption=self._caption(images[len(images) // 2]),
        )

    def _soundtrack(self, audio: np.ndarray | None, sample_rate: int) -> Transcript | None:
        if audio is None or audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK:
            return None
        return self.asr.transcribe((audio, sample_rate))

    def _caption(self, image: Image.Image) -> str | None:
        if self.captioner is None:
            return None
        caption = self.captioner.caption([image])[0].strip()
        return caption or None
