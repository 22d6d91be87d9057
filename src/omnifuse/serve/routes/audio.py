"""``POST /v1/audio/transcriptions``: OpenAI's transcription endpoint (multipart upload)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from omnifuse.errors import InputTooLargeError
from omnifuse.serve.components import ASR_ALIASES
from omnifuse.serve.inputs import decode
from omnifuse.serve.schemas import Transcription, TranscriptionSegment, VerboseTranscription
from omnifuse.serve.state import state_of

router = APIRouter(tags=["audio"])

ResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]


def timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def subtitles(segments: list[Any], kind: str) -> str:
    """Segments as SubRip (``srt``) or WebVTT (``vtt``) cues."""
    separator = "," if kind == "srt" else "."
    cues = []
    for i, seg in enumerate(segments, start=1):
        span = f"{timestamp(seg.start, separator)} --> {timestamp(seg.end, separator)}"
        cue = f"{span}\n{seg.text.strip()}\n"
        cues.append(f"{i}\n{cue}" if kind == "srt" else cue)
    body = "\n".join(cues)
    return body if kind == "srt" else f"WEBVTT\n\n{body}"


@router.post(
    "/v1/audio/transcriptions",
    response_model=Transcription | VerboseTranscription,
    responses={200: {"content": {"text/plain": {}}}},
)
async def transcribe(
    request: Request,
    file: Annotated[UploadFile, File(description="The audio file (wav, mp3, flac, ogg, ...).")],
    model: Annotated[str, Form(min_length=1, max_length=200)] = "whisper-1",
    response_format: Annotated[ResponseFormat, Form()] = "json",
    language: Annotated[str | None, Form(max_length=16)] = None,
    prompt: Annotated[str | None, Form(max_length=4000)] = None,
    temperature: Annotated[float, Form(ge=0, le=1, allow_inf_nan=False)] = 0.0,
) -> Any:
    """Transcribe speech (``model``: ``whisper-tiny-en``/``whisper-1`` for faster-whisper, or
    ``pocketsphinx``). ``response_format`` is ``json``, ``text``, ``verbose_json`` (with
    segments), ``srt`` or ``vtt``. ``language`` (ISO 639-1) and ``prompt`` (text the speech
    resembles: spellings, names, style) go to the engine; a language it does not recognise, or
    a prompt given to an engine that takes none, is refused with 400 rather than ignored."""
    state = state_of(request)
    limit = state.policy.max_bytes
    data = await file.read(limit + 1)
    name = file.filename or "file"
    if len(data) > limit:
        raise InputTooLargeError(f"is over the limit of {limit} bytes", source=name)
    audio = await run_in_threadpool(decode, "audio", data, state.decode_limits, label=name)
    asr = await run_in_threadpool(state.components.asr, model)
    engine = ASR_ALIASES.get(model, model)
    options = {"language": language or None, "prompt": prompt or None}
    asr.check_options(**options)  # refused before the clip waits its turn on the engine
    transcript = await state.components.serial(
        f"asr:{engine}", partial(asr.transcribe, audio, **options)
    )
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(subtitles(list(transcript.segments), response_format))
    if response_format == "verbose_json":
        return VerboseTranscription(
            language=str(transcript.language),
            duration=float(transcript.duration_s),
            text=transcript.text,
            segments=[
                TranscriptionSegment(id=i, start=float(s.start), end=float(s.end), text=s.text)
                for i, s in enumerate(transcript.segments)
            ],
        )
    return Transcription(text=transcript.text)
