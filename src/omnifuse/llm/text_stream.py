"""Turning a stream of token ids into a stream of text pieces, with stop strings.

Backends that decode token by token themselves (``hf``) need two things a server or llama.cpp
does internally: detokenising incrementally without splitting a multi-byte character or losing
the spaces a tokenizer attaches to word starts, and cutting the text at a stop string even when
the string arrives split across several tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

REPLACEMENT = "\ufffd"


class TokenDecoder:
    """Incremental detokeniser: ``add(token)`` returns the text that token completes.

    Each step decodes a short window that starts a few tokens back, so word-initial spaces come
    out right, and waits while the text ends in an incomplete UTF-8 sequence.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def add(self, token: int) -> str:
        self.tokens.append(token)
        prefix_text = self._text(self.prefix_offset, self.read_offset)
        new_text = self._text(self.prefix_offset, len(self.tokens))
        if len(new_text) <= len(prefix_text) or new_text.endswith(REPLACEMENT):
            return ""
        self.prefix_offset = self.read_offset
        self.read_offset = len(self.tokens)
        return new_text[len(prefix_text) :]

    def flush(self) -> str:
        """Whatever text the held-back tokens make, complete or not."""
        prefix_text = self._text(self.prefix_offset, self.read_offset)
        new_text = self._text(self.prefix_offset, len(self.tokens))
        self.prefix_offset = self.read_offset = len(self.tokens)
        return new_text[len(prefix_text) :]

    def _text(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return str(self.tokenizer.decode(self.tokens[start:end], skip_special_tokens=True))


class StopScanner:
    """Passes text through until a stop string appears; the stop string itself is dropped.

    Text that could be the beginning of a stop string is held back until the next piece shows
    whether it is one, so a caller never sees part of a stop string.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self.buffer[: min(hits)]
            self.buffer = ""
            self.stopped = True
            return out
        keep = self._partial_length()
        out = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(self.buffer) - keep :]
        return out

    def finish(self) -> str:
        """The held-back text once the stream has ended without a stop string."""
        out = "" if self.stopped else self.buffer
        self.buffer = ""
        return out

    def _partial_length(self) -> int:
        """Length of the longest buffer suffix that is a proper prefix of some stop string."""
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.buffer)), longest, -1):
                if self.buffer.endswith(stop[:k]):
                    longest = k
                    break
        return longest
