"""Grounded answers: a reply stands only when the notes the assistant perceived support it.

A small language model answers something to every question, including questions about things
that are in no note (a cat's name, the weather in a drawing), and may repeat an answer from its
prompt's worked examples. So a reply is checked against the notes it was given, after it is
decoded:

- the model said it cannot tell → the assistant abstains;
- a colour, a count or an open answer must be found in the notes (an open answer by at least
  one of its content words that the question did not already say, or by a broader word for one
  — "coffee" for a noted espresso, from WordNet); the notes' percentages and scores are not
  findings, so "13" is not supported by "envelope 13%";
- "is there X?" needs X (or a word above a noted thing: "animal" for a noted cat) in the notes,
  whether the reply is yes or no — no note of a dog is not proof that there is none; other
  yes/no and "A or B" answers need only some note about the inputs;
- at ``strict``, the things the question names must be in the notes too ("what colour is the
  dog?" abstains when no note mentions a dog).

Abstaining says so and what was perceived, so the user still learns what the assistant saw.
``strictness="off"`` keeps every reply.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from omnifuse.assistant.prompts import (
    COLOURS,
    NUMBER_WORDS,
    first_line,
    question_kind,
)
from omnifuse.errors import ConfigError

Strictness = Literal["off", "normal", "strict"]
STRICTNESS: tuple[str, ...] = ("off", "normal", "strict")
CANNOT_TELL = "I can't tell from what I perceived."
_WORD = re.compile(r"[a-z0-9]+")
_UNSURE = re.compile(
    r"\b(can ?not|can't|cannot|unable to|not sure|no idea|unknown|don't know|do not know|"
    r"not (?:say|said|mentioned|shown|visible|clear|possible)|no (?:notes?|information))\b",
    re.I,
)
STOP_WORDS = frozenset(
    """a an the of in on at to is are was were be been it its this that these those there here
    and or but with without for from by as what which who whom whose where when why how many much
    do does did can could will would should has have had i you he she they we me my your his her
    their our image picture photo photograph scene video clip recording audio sound speech say
    says said colour color shape object thing things one kind type left right top bottom above
    below middle centre center next near any some all please tell me show see seen look looks
    like yes no not""".split()  # noqa: SIM905
)


def check_strictness(value: str) -> Strictness:
    if value not in STRICTNESS:
        raise ConfigError(f"grounding strictness must be one of {STRICTNESS}, got {value!r}")
    return value  # type: ignore[return-value]


def content_words(text: str) -> set[str]:
    """Lower-case words of ``text`` that carry meaning (no stop words, plural ``s`` dropped)."""
    words = _WORD.findall(text.lower())
    return {_stem(w) for w in words if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())}


def _stem(word: str) -> str:
    if word.isdigit():
        return str(int(word))
    if word in NUMBER_WORDS:
        return str(NUMBER_WORDS.index(word))
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def is_grounded(
    raw: str, answer: str, question: str, notes: str, strictness: Strictness = "normal"
) -> bool:
    """Whether the reply ``raw`` (short form ``answer``) to ``question`` stands on ``notes``."""
    if strictness == "off":
        return True
    if not notes.strip() or _UNSURE.search(first_line(raw) or raw):
        return False
    known = noted_words(notes)
    if strictness == "strict" and not content_words(_subject(question)) <= known:
        return False
    kind = question_kind(question)
    if kind == "choice":
        return True
    if kind == "yes-no":
        asked = _existence_subject(question)
        return asked is None or bool(content_words(asked) & noted_words(notes, depth=12))
    said = content_words(answer) - content_words(question)
    return bool(said) and bool(said & known)


_EXISTS = re.compile(
    r"^(?:is there|are there|can you see|do you see|does (?:it|the \w+) (?:show|have|contain))"
    r"\s+(?:an? |any |the |some )?(.+?)\W*$",
    re.I,
)


def _existence_subject(question: str) -> str | None:
    """What a "is there X?" question asks about (None for other yes/no questions)."""
    match = _EXISTS.match(question.strip())
    return match.group(1) if match else None


_FIGURES = re.compile(r"\d+(?:\.\d+)?\s*%|\(\d*\.\d+\)|confidence \d+ %|\d+\.\d+")


NOTE_WORDS = frozenset(
    "object label caption index nearest indexed item background model confidence test accuracy "  # noqa: SIM905
    "validation val macro f1 text colour image speech video frame soundtrack people face "
    "found none seen".split()
)
"""Words of the notes' own layout ("labels:", "nearest indexed items"), not findings."""


def noted_words(notes: str, depth: int = 3) -> set[str]:
    """The content words of the notes without their layout words and figures (percentages,
    scores), with the broader words WordNet knows for each (up to ``depth`` hypernym steps up
    its most common sense)."""
    words = content_words(_FIGURES.sub(" ", notes)) - NOTE_WORDS
    things = {w for w in words if not w.isdigit() and w not in COLOURS}  # "grey" is a writer too
    broad = {b for word in things for b in _broader(word, depth)}
    return words | broad


@functools.cache
def _broader(word: str, depth: int) -> frozenset[str]:
    from omnifuse.assistant.wordnet import WordNetNouns
    from omnifuse.errors import MissingDependencyError

    try:
        nouns = _wordnet(WordNetNouns)
    except MissingDependencyError:  # without WordNet, words count only as they are
        return frozenset()
    return frozenset(_stem(w) for term in nouns.broader(word, depth) for w in term.split())


@functools.cache
def _wordnet(kind: Any) -> Any:
    return kind()


def _subject(question: str) -> str:
    """The part of a question that names what it asks about (its words after the verb)."""
    words = _WORD.findall(question.lower())
    return " ".join(w for w in words if w not in STOP_WORDS)


def abstention(perceived: str) -> str:
    """What the assistant says when it cannot tell: that, and what it did perceive."""
    perceived = " ".join(perceived.split())
    return f"{CANNOT_TELL} I perceived: {perceived}" if perceived else CANNOT_TELL
