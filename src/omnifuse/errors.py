"""Typed errors shared by every layer.

Bad input never surfaces as a bare ``ValueError`` from a third-party decoder: it is caught at the
boundary and re-raised as an :class:`InputError` subclass that names the input (a path, a sample id
or a description), the modality and the reason, so batch jobs can report and skip it and the HTTP
layer can answer 4xx with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence


class OmnifuseError(Exception):
    """Base class of every error omnifuse raises on purpose."""


class InputError(OmnifuseError, ValueError):
    """An input could not be used; ``source`` names it, ``modality`` says what it should be."""

    def __init__(self, reason: str, *, source: object = None, modality: str | None = None) -> None:
        self.reason = reason
        self.source = None if source is None else str(source)
        self.modality = modality
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.modality:
            parts.append(self.modality)
        if self.source:
            parts.append(repr(self.source) if len(self.source) < 200 else repr(self.source[:200]))
        where = " ".join(parts)
        return f"{where}: {self.reason}" if where else self.reason


class EmptyInputError(InputError):
    """The input has no content: a zero-byte file, an empty string, a clip without samples."""


class CorruptInputError(InputError):
    """The input is truncated or malformed and its decoder gave up."""


class UnsupportedFormatError(InputError):
    """The input is in a format omnifuse does not decode, or its content does not match its name."""


class InputTooLargeError(InputError):
    """The input exceeds a safety limit (pixels, duration, bytes, characters)."""


class TextEncodingError(InputError):
    """Text that is not valid UTF-8."""


class InvalidValueError(InputError):
    """The input decoded but holds values that cannot be used (NaN, infinities, wrong shape)."""


class InputNotFoundError(InputError):
    """A path that does not exist or is not a regular file."""


class MissingModalityError(InputError):
    """A sample lacks a modality that the operation requires."""


class ManifestError(InputError):
    """A manifest (JSONL/CSV dataset index) is malformed; ``issues`` lists every bad line."""

    def __init__(
        self, reason: str, *, source: object = None, issues: Sequence[object] | None = None
    ):
        self.issues = list(issues or [])
        super().__init__(reason, source=source, modality="manifest")


class ConfigError(OmnifuseError, ValueError):
    """A configuration value is missing, of the wrong type, or out of range."""


class MissingDependencyError(OmnifuseError, ImportError):
    """An optional extra or system package is needed for this feature and is not installed."""

    def __init__(self, what: str, *, extra: str | None = None, apt: str | None = None) -> None:
        hints = []
        if extra:
            hints.append(f"pip install 'omnifuse[{extra}]'")
        if apt:
            hints.append(f"apt-get install {apt}")
        hint = f" (install with: {' or '.join(hints)})" if hints else ""
        super().__init__(f"{what} is not available{hint}")


class UnknownComponentError(OmnifuseError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown component"


class ServiceUnavailableError(OmnifuseError):
    """A server omnifuse depends on (a Milvus server, say) does not answer; the same call may
    succeed once it is back, so a caller answers "try later" rather than "you asked wrongly"."""
