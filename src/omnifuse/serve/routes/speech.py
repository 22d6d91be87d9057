"""``POST /v1/audio/speech``: text to speech in OpenAI's request shape, spoken by espeak-ng or
flite (:mod:`omnifuse.speech.tts`, system engines that run offline).

``model`` picks the engine (``espeak-ng``, ``flite``; OpenAI's ``tts-1`` and ``tts-1-hd`` mean
espeak-ng), ``voice`` one of its voices or one of OpenAI's six names (mapped onto the engine's
voices), ``speed`` the speaking rate (1 = 160 words a minute). The answer is 16 kHz mono WAV.
One synthesis runs at a time, on its own thread, so a burst of requests queues instead of
starting many engine processes at once.
"""

from __future__ import annotations

import io
import subprocess
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from omnifuse.serve.api_errors import APIError
from omnifuse.serve.schemas import Body, ModelName
from omnifuse.serve.state import state_of

router = APIRouter(tags=["audio"])

ENGINES = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "tts-1": "espeak-ng",
    "tts-1-hd": "espeak-ng",
}
OPENAI_VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
BASE_RATE = 160
SYNTHESIS_TIMEOUT_S = 30.0


class SpeechRequest(Body):
    """OpenAI's speech request: ``input`` (at most 4096 characters), ``model``, ``voice``,
    ``response_format`` (``wav`` only) and ``speed``."""

    input: str = Field(min_length=1, max_length=4096)
    model: ModelName = "espeak-ng"
    voice: str = Field(default="en-us", min_length=1, max_length=64)
    response_format: Literal["wav"] = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)


def engine_voices(engine: str) -> tuple[str, ...]:
    from omnifuse.speech.tts import ESPEAK_VOICES, FLITE_VOICES

    return ESPEAK_VOICES if engine == "espeak-ng" else FLITE_VOICES


def voice_name(engine: str, voice: str) -> str:
    """The engine's voice for ``voice``: its own name, or one of OpenAI's mapped in order."""
    voices = engine_voices(engine)
    if voice in voices:
        return voice
    if voice in OPENAI_VOICES:
        return voices[OPENAI_VOICES.index(voice) % len(voices)]
    raise APIError(
        400,
        f"no voice {voice[:64]!r} for {engine}; use one of {list(voices)} or {list(OPENAI_VOICES)}",
        code="unsupported_voice",
    )


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates as spaces: the engine takes the
    text as a command-line argument, where they cannot go."""
    return "".join(c if c.isprintable() or c in "\n\t" else " " for c in text)


def wav_bytes(text: str, engine: str, voice: str, speed: float) -> bytes:
    """``text`` spoken as 16-bit WAV (blocking: runs the engine as a subprocess)."""
    import soundfile as sf

    from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize

    rate = round(min(450, max(80, BASE_RATE * speed)))
    try:
        wave = synthesize(text, Voice(engine, voice, rate=rate), timeout_s=SYNTHESIS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise APIError(504, f"{engine} took longer than {SYNTHESIS_TIMEOUT_S:g} s") from None
    except RuntimeError as err:
        raise APIError(503, f"speech synthesis failed: {err}", code="synthesis_failed") from None
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}, "description": "The speech as WAV."}},
)
async def create_speech(body: SpeechRequest, request: Request) -> Response:
    """Speak ``input`` with the chosen engine and voice; the answer is a WAV file."""
    state = state_of(request)
    engine = ENGINES.get(body.model)
    if engine is None:
        raise APIError(
            404,
            f"no speech model {body.model!r}; use one of {sorted(ENGINES)}",
            code="model_not_found",
        )
    limit = state.config.limits.max_text_chars
    if len(body.input) > limit:
        raise APIError(413, f"input is {len(body.input)} characters, over the limit of {limit}")
    voice = voice_name(engine, body.voice)
    text = printable(body.input)
    audio = await state.components.serial("speech", wav_bytes, text, engine, voice, body.speed)
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "no-store"})
