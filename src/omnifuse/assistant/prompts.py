"""Prompts for answering from perception notes, and the short-answer post-processing.

The default model (Gemma-3-270M, a base model) follows examples better than instructions, so
the conversation opens with a few worked question/answer turns in the same ``Notes:``/
``Question:`` form as the real one, all with short answers, two of them declining to answer what
the notes do not say. The examples ask different questions and answer each from its own notes,
so the model learns to copy from the notes rather than from the examples (with one "What animal
is this?" → "A dog." example it answered "a dog" about a cat photo); their findings (a horse, a
bus, "ROUTE 9") are of things the real notes rarely hold, and
:mod:`omnifuse.assistant.grounding` refuses a reply the real notes do not support, so an
example's answer cannot pass for one. Replies are cut to their first line, and for questions
with a closed answer set (yes/no, a count, a colour, "A or B") the answer is reduced to that
word; the raw reply is kept alongside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from omnifuse.llm.base import ChatMessage

SYSTEM_PROMPT = (
    "You answer questions about an image, a recording or a video using only the notes given "
    "with each question: what perception found, and what omnifuse's tools said (a tool line "
    "gives its answer, its confidence and how accurate it is known to be). Answer in a few "
    "words. When the notes do not say, answer: I can't tell."
)
NO_NOTES = "none"

FEW_SHOT: tuple[tuple[str, str, str], ...] = (
    ("Image: objects: bicycle 88%", "What is shown?", "A bicycle."),
    ("Image: objects: horse 91%", "What animal is this?", "A horse."),
    (
        "Image: colours: green at the left (10 %), orange at the right (7 %)\n"
        "model:shapes-vqa: orange (confidence 88 %; test accuracy 0.71)",
        "what colour is the star?",
        "orange",
    ),
    (
        "Image: caption: two green triangles and a yellow star\n"
        'index: nearest captions of the image: "two green triangles and a star" (0.91)',
        "how many triangles are there?",
        "2",
    ),
    ("Image: objects: cat 92%; colours: grey all over", "What is the cat's name?", "I can't tell."),
    (
        "Image: objects: umbrella 80%; colours: blue at the top (40%)",
        "what is the weather like?",
        "I can't tell.",
    ),
    ('Image: objects: bus 70%; text in image: "ROUTE 9"', "What does the sign say?", "ROUTE 9"),
    ('Speech: "the meeting moved to friday"', "When is the meeting?", "Friday."),
)
"""(notes, question, answer) examples shown before the real question."""

QuestionKind = Literal["yes-no", "count", "colour", "choice", "open"]
COLOURS = frozenset(
    "red orange yellow green cyan blue purple violet pink magenta brown black white grey gray "  # noqa: SIM905
    "gold silver".split()
)
NUMBER_WORDS = tuple(
    "zero one two three four five six seven eight nine ten eleven twelve".split()  # noqa: SIM905
)
_YES_NO_START = re.compile(
    r"^(is|are|was|were|am|do|does|did|can|could|will|would|should|has|have|had)\b", re.I
)
_WORD = re.compile(r"[a-z0-9]+")


def user_turn(notes: str, question: str) -> str:
    """The user's message: the perception notes, then the question."""
    return f"Notes: {notes.strip() or NO_NOTES}\nQuestion: {question.strip()}"


def build_messages(
    notes: str,
    question: str,
    history: Sequence[ChatMessage] = (),
    *,
    system: str = SYSTEM_PROMPT,
    examples: Sequence[tuple[str, str, str]] = FEW_SHOT,
) -> list[ChatMessage]:
    """System prompt, worked examples, earlier turns, then this question with its notes."""
    messages = [ChatMessage("system", system)] if system else []
    for example_notes, example_question, answer in examples:
        messages.append(ChatMessage("user", user_turn(example_notes, example_question)))
        messages.append(ChatMessage("assistant", answer))
    messages.extend(m for m in history if m.role != "system")
    messages.append(ChatMessage("user", user_turn(notes, question)))
    return messages


def question_kind(question: str) -> QuestionKind:
    """What sort of answer a question wants, from its wording."""
    text = question.strip().lower()
    options = choice_options(text)
    if options:
        return "choice"
    if text.startswith("how many"):
        return "count"
    if re.search(r"\bwhat colou?r\b", text):
        return "colour"
    if _YES_NO_START.match(text):
        return "yes-no"
    return "open"


def choice_options(question: str) -> tuple[str, str] | None:
    """The two options of an "is it A or B?" question (last word before and after " or ")."""
    match = re.search(r"\b([a-z]+) or ([a-z]+)\W*$", question.strip().lower())
    return (match.group(1), match.group(2)) if match else None


def first_line(text: str) -> str:
    """The first non-empty line, trimmed."""
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


def short_answer(raw: str, question: str) -> str:
    """The answer the question asks for, taken from the model's reply.

    Yes/no → ``yes``/``no``; counts → digits; colours → the colour named; "A or B" → the option
    named; anything else → the first line. Falls back to the first line when the reply does not
    contain an answer of the expected kind.
    """
    line = first_line(raw)
    words = _WORD.findall(line.lower())
    kind = question_kind(question)
    picked: str | None = None
    if kind == "yes-no":
        picked = next((w for w in words if w in ("yes", "no")), None)
    elif kind == "count":
        picked = next((_as_digits(w) for w in words if _as_digits(w) is not None), None)
    elif kind == "colour":
        picked = next((w for w in words if w in COLOURS), None)
    elif kind == "choice":
        options = choice_options(question) or ()
        picked = next((w for w in words if w in options), None)
    return picked if picked is not None else line


def _as_digits(word: str) -> str | None:
    """``"3"``/``"three"`` → ``"3"``; None for a word that is not a number."""
    if word.isdigit():
        return str(int(word))
    return str(NUMBER_WORDS.index(word)) if word in NUMBER_WORDS else None
