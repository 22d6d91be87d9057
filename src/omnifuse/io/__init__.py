"""Safe decoding of every modality.

Each loader accepts the raw forms a sample may hold (paths, bytes, decoded arrays), checks the
cheap facts first (file size, header pixel count, header duration, text length), decodes by
content rather than by file name, and turns every failure into a typed
:class:`omnifuse.errors.InputError` that names the input, the modality and the reason.
"""

from omnifuse.io.audio import load_audio
from omnifuse.io.image import load_image
from omnifuse.io.limits import DEFAULT_LIMITS, DecodeLimits
from omnifuse.io.series import Series, load_series, resample_series
from omnifuse.io.sniff import sniff_format
from omnifuse.io.table import Record, load_record
from omnifuse.io.text import load_text, normalize_text
from omnifuse.io.video import VideoClip, load_video

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeLimits",
    "Record",
    "Series",
    "VideoClip",
    "load_audio",
    "load_image",
    "load_record",
    "load_series",
    "load_text",
    "load_video",
    "normalize_text",
    "resample_series",
    "sniff_format",
]
