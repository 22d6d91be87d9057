"""Pretrained audio encoders: Whisper tiny.en (CTranslate2), any Hugging Face audio model, and
speaker embeddings. Importing this package registers ``whisper-tiny-en``, ``hf-audio`` and
``speaker`` in :data:`omnifuse.encoders.base.encoders`.
"""

from omnifuse.encoders.audio.hf_audio import HFWaveformEncoder, HFWhisperEncoder, hf_audio
from omnifuse.encoders.audio.speaker import SpeakerEncoder
from omnifuse.encoders.audio.whisper_ct2 import WhisperTinyEnEncoder

__all__ = [
    "HFWaveformEncoder",
    "HFWhisperEncoder",
    "SpeakerEncoder",
    "WhisperTinyEnEncoder",
    "hf_audio",
]
