"""False premises: a question that takes for granted something the image does not show.

"What colour is the cat?" presupposes a cat; "why is the red square above the circle?"
presupposes a red square and a circle (and that one is above the other). Answering such a
question about an image without a cat answers a premise the image contradicts. The
``consistency`` tool (:class:`PremiseTool`) puts each presupposition to a cross-modal
consistency checker (an aligned model with calibrated thresholds, given by the caller) and,
when one falls below its threshold, the assistant says that the image does not seem to show
it (:func:`premise_refusal`) instead of answering. A statement in words the checker's model
never read in training ("a cat" put to a model of coloured shapes) is not checked: the model
cannot judge it either way.

What counts as a presupposition is kept simple and predictable:

- questions that ask whether something is there — "is/are there ...", "can/do you see ...",
  "does it/the image show/have/contain ...", "is it/this/that ..." — and "how many ..."
  questions (zero is an answer) presuppose nothing;
- otherwise each singular definite noun phrase ("the" + up to three words before a verb,
  preposition or the end) is a presupposition, stated with "a"/"an": "the red square" → "a
  red square". Phrases about the picture itself or a place in it ("the image", "the left",
  "the background") and ones headed by a generic word ("the object", "the shape") or a plural
  are left out.

The objects a question relates are checked, not the relation itself: the aligned world models
tell one changed colour, shape or count from the true caption far better than one reversed
relation, which they do not tell at all (docs/BENCHMARKS.md, "Cross-modal consistency"), so a
relation check would refuse true premises at random.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from omnifuse.assistant.notes import ToolNote
from omnifuse.assistant.tools import ToolRequest

NAME = "consistency"
_NO_PREMISE = re.compile(
    r"^(?:is there|are there|is it|is this|is that|are these|are those|can you see|do you see|"
    r"could you see|does (?:it|this|that|the (?:image|picture|photo|scene)) "
    r"(?:show|have|contain|include)|how many)\b"
)
STOP = frozenset(
    """is are was were be been to of in on at with and or but that which who than as from by for
    left right above below under over next near behind beside inside doing look looks looking
    have has had do does did can could will would should sitting standing lying holding made
    called named there here it its when where while if so not""".split()  # noqa: SIM905
)
PLACES = frozenset(
    """image picture photo photograph scene background foreground left right top bottom middle
    centre center corner edge side front back frame video clip recording sound audio""".split()  # noqa: SIM905
)
GENERIC = frozenset("object objects thing things shape shapes one item items colour color".split())  # noqa: SIM905


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1] in "aeiou" else f"a {phrase}"


def _noun_phrase(words: Sequence[str]) -> str | None:
    """The statement of a definite phrase's words (after "the"), or None when it is left out."""
    kept: list[str] = []
    for word in words:
        if word in STOP or word == "the" or len(kept) == 3:
            break
        if word.endswith("'s"):
            kept.append(word[:-2])
            break
        kept.append(word)
    if not kept:
        return None
    head = kept[-1]
    if head in PLACES or head in GENERIC or any(w in PLACES for w in kept):
        return None
    if len(head) > 3 and head.endswith("s") and not head.endswith(("ss", "us", "is")):
        return None  # a plural: "the circles" presupposes some circles, not "a circle"
    return _article(" ".join(kept))


def presuppositions(question: str) -> list[str]:
    """The things ``question`` takes for granted, as statements to check against an image ("a
    red square", "a circle"); empty when it presupposes nothing."""
    text = " ".join(re.sub(r"[^a-z0-9' -]", " ", question.lower()).split())
    if not text or _NO_PREMISE.match(text):
        return []
    words = text.split()
    found: list[str] = []
    for i, word in enumerate(words):
        statement = _noun_phrase(words[i + 1 :]) if word == "the" else None
        if statement and statement not in found:
            found.append(statement)
    return found


@dataclass(frozen=True)
class PremiseCheck:
    """One statement checked against the image: its calibrated probability and threshold."""

    statement: str
    probability: float
    threshold: float

    @property
    def holds(self) -> bool:
        return self.probability >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "probability": round(self.probability, 4),
            "threshold": round(self.threshold, 4),
            "verdict": "consistent" if self.holds else "inconsistent",
        }


class PremiseChecker(Protocol):
    """Something that scores texts against an image: an aligned model with its consistency
    calibration (``ConsistencyChecker.text_image``). ``vocabulary``: the words of the texts it
    was trained on (None: unknown), since it can only judge statements in those words."""

    vocabulary: frozenset[str] | None

    def text_image(self, texts: Sequence[str], image: Any) -> list[tuple[float, float]]:
        """(probability, threshold) of each text describing the image."""
        ...


class PremiseTool:
    """The ``consistency`` tool: checks each presupposition of the question against the
    attached image; its note names the first that fails (``data.refuted``). ``checker`` is the
    checker, or a function that loads it when first needed."""

    name = NAME

    def __init__(
        self,
        checker: PremiseChecker | Callable[[], PremiseChecker],
        *,
        quality: str | None = None,
    ) -> None:
        self._checker = checker
        self.quality = quality

    @property
    def checker(self) -> PremiseChecker:
        if not hasattr(self._checker, "text_image"):
            self._checker = cast(Callable[[], PremiseChecker], self._checker)()
        return cast(PremiseChecker, self._checker)

    def applies(self, request: ToolRequest) -> bool:
        return request.image is not None and bool(presuppositions(request.question))

    def run(self, request: ToolRequest) -> ToolNote | None:
        statements = presuppositions(request.question)
        if request.image is None or not statements:
            return None
        unchecked = self._unknown(statements)
        asked = [s for s in statements if s not in unchecked]
        if not asked:  # nothing in words the model knows: it has nothing to say (to the LLM)
            reason = "; ".join(f"{s}: never saw {', '.join(w)}" for s, w in unchecked.items())
            return ToolNote(self.name, "", data={"skipped": f"not checked ({reason})"})
        scored = self.checker.text_image(asked, request.image)
        checks = [PremiseCheck(s, p, t) for s, (p, t) in zip(asked, scored, strict=True)]
        refuted = next((c for c in checks if not c.holds), None)
        if refuted is not None:
            text = f"the image does not seem to show {refuted.statement}"
        else:
            text = "the image is consistent with " + " and ".join(c.statement for c in checks)
        return ToolNote(
            name=self.name,
            text=text,
            confidence=min(c.probability for c in checks),
            quality=self.quality,
            data={
                "premises": [c.to_dict() for c in checks],
                "refuted": None if refuted is None else refuted.statement,
                "unchecked": list(unchecked),
            },
        )

    def _unknown(self, statements: Sequence[str]) -> dict[str, list[str]]:
        """The statements with words the checker's model never read, and those words."""
        from omnifuse.assistant.domain import unknown_words
        from omnifuse.assistant.grounding import content_words

        vocabulary = getattr(self.checker, "vocabulary", None)
        if vocabulary is None:
            return {}
        known = content_words(" ".join(sorted(vocabulary)))
        found = {s: unknown_words(s, known) for s in statements}
        return {s: words for s, words in found.items() if words}


def premise_refusal(tools: Sequence[ToolNote]) -> str | None:
    """What the assistant says instead of answering when the consistency tool refuted a
    premise of the question; None when it did not."""
    for note in tools:
        if note.name == NAME and note.data.get("refuted"):
            return f"The image doesn't seem to show {note.data['refuted']}."
    return None
