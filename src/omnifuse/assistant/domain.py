"""Whether a question is one a trained question-answering model can answer: its words.

A VQA classifier answers every question with one of its classes, confidently or not, including
questions about things it never saw ("what colour is the dog?" put to a model of coloured
shapes). Its training questions say what it knows about, so a question whose meaningful words it
never met is not put to it. A word counts as met when it is close to one it met (a misheard
"blogjects" for "objects"), since spoken questions reach the model through speech recognition.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omnifuse.assistant.grounding import content_words
from omnifuse.errors import OmnifuseError

CLOSE_ENOUGH = 0.7
"""difflib ratio at or above which an unknown word counts as a known one misheard."""


@functools.cache
def manifest_vocabulary(manifest: Path) -> frozenset[str] | None:
    """The content words of every question in ``manifest`` (fields named ``question``...),
    or None when it cannot be read or holds no written questions."""
    from omnifuse.data.manifest import load_manifest

    try:
        samples = load_manifest(manifest).samples
    except (OSError, ValueError, OmnifuseError):  # a damaged manifest: no vocabulary
        return None
    words: set[str] = set()
    for sample in samples:
        for column, value in sample.items():
            if "question" in column.lower() and isinstance(value, str) and " " in value:
                words |= content_words(value)
    return frozenset(words) or None


def trained_vocabulary(metrics: dict[str, Any]) -> frozenset[str] | None:
    """The question vocabulary of a model folder's training manifest (``metrics.data``)."""
    data = metrics.get("data")
    manifest = data.get("manifest") if isinstance(data, dict) else None
    if not isinstance(manifest, str) or not Path(manifest).is_file():
        return None
    return manifest_vocabulary(Path(manifest).resolve())


def unknown_words(question: str, vocabulary: Iterable[str]) -> list[str]:
    """The question's content words that are neither in ``vocabulary`` nor close to a word in
    it, in sorted order."""
    known = set(vocabulary)
    return sorted(
        word
        for word in content_words(question)
        if word not in known and not difflib.get_close_matches(word, known, 1, CLOSE_ENOUGH)
    )
