"""Safety limits applied before and while decoding untrusted media.

Every loader checks the cheap facts first (file size, header pixel count, header duration) so a
hostile or accidental input is refused before it costs memory or time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from omnifuse.errors import ConfigError

MB = 1024 * 1024


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds on what a loader accepts; exceeding one raises ``InputTooLargeError``.

    ``max_text_chars`` applies to the decoded text before normalisation, so the cost of
    normalising is bounded too. ``max_series_steps`` bounds a series' length before and after
    resampling (so a tiny file at an absurd rate cannot expand into gigabytes).
    """

    max_bytes: int = 200 * MB
    max_pixels: int = 40_000_000
    max_audio_seconds: float = 600.0
    max_video_seconds: float = 600.0
    max_text_chars: int = 1_000_000
    max_series_steps: int = 1_000_000
    max_series_channels: int = 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(
                    f"DecodeLimits.{field.name} must be a positive number, got {value!r}"
                )


DEFAULT_LIMITS = DecodeLimits()


def resolve_limits(limits: DecodeLimits | None) -> DecodeLimits:
    """The limits to apply: the caller's, or the module default."""
    return DEFAULT_LIMITS if limits is None else limits
