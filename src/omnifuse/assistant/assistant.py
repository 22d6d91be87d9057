"""The multimodal assistant: perceive the attachments, ask the LLM, speak the answer.

``Assistant.ask`` takes a question (text, or spoken as ``audio``) with an optional image, video
or recording, turns what it perceives into notes (:mod:`omnifuse.assistant.perception`), and
asks the language model (default: Gemma-3-270M through llama.cpp) to answer from them.
Before it answers, a :class:`~omnifuse.assistant.tools.Toolbox` consults omnifuse's own
trained models and index, and their findings join the notes (when the ``consistency`` tool
finds that the image contradicts what the question takes for granted, the assistant says so
instead of asking the LLM: :mod:`omnifuse.assistant.premise`); the reply is then checked against
the notes (:mod:`omnifuse.assistant.grounding`) and replaced by "I can't tell" with what was
perceived when they do not support it. ``ask_stream`` yields the answer as it is decoded;
``speak`` turns text into 16 kHz speech with espeak-ng.
:class:`ChatSession` keeps the history and attachments of an interactive conversation.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from omnifuse.assistant.affect import hear_affect
from omnifuse.assistant.answer import Answer, AnswerStream
from omnifuse.assistant.grounding import check_strictness
from omnifuse.assistant.notes import ToolNote, merge_timings, notes_text
from omnifuse.assistant.perception import ImageCaptioner, Perceiver, PerceptionContext
from omnifuse.assistant.premise import premise_refusal
from omnifuse.assistant.prompts import FEW_SHOT, build_messages, first_line, user_turn
from omnifuse.assistant.tools import Toolbox, ToolRequest
from omnifuse.errors import EmptyInputError, InputError
from omnifuse.io.audio import load_audio
from omnifuse.io.image import load_image
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, create_llm
from omnifuse.speech.asr import ASR, Transcript
from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize

DEFAULT_GENERATION = GenerationConfig(max_tokens=64, temperature=0.0, stop=("\n",))
"""Greedy, one line: the short answers the prompts ask for."""


class Assistant:
    """Answers questions about images, speech and video with a text LLM.

    Every part is optional and built on first use: ``llm`` (``create_llm()``), ``asr`` (the
    perceiver's, faster-whisper by default) for spoken questions, ``perceiver`` (labels, OCR,
    transcripts) and ``captioner`` (handed to the default perceiver). ``toolbox`` holds the
    trained models and indexes to consult; ``grounding`` is how strictly a reply must stand on
    the notes (``off``, ``normal``, ``strict``; see :mod:`omnifuse.assistant.grounding`).
    ``native``: images and recordings also go to an LLM that takes them itself (a vision or
    audio backend, see :attr:`~omnifuse.llm.base.LLM.modalities`); ``notes=False`` then leaves
    the perception and tool notes out of its prompt. ``examples``: the worked (notes, question,
    answer) turns that open every conversation (an instruction-tuned model may need none).
    ``trust_models``: a model that was asked the question itself (a VQA model) and answers with
    at least this probability gives the short answer, the LLM's reply staying as ``raw``
    (None: the LLM's reply always decides). ``affect``: a recording's notes include how it was
    said and what its words convey (:mod:`omnifuse.assistant.affect`: pace, loudness, pitch,
    VADER's sentiment), so a reply may take the speaker's mood into account.
    """

    def __init__(
        self,
        llm: LLM | None = None,
        asr: ASR | None = None,
        perceiver: Perceiver | None = None,
        captioner: ImageCaptioner | None = None,
        *,
        voice: Voice | None = None,
        toolbox: Toolbox | None = None,
        grounding: str = "normal",
        trust_models: float | None = 0.0,
        native: bool = True,
        notes: bool = True,
        examples: Sequence[tuple[str, str, str]] = FEW_SHOT,
        affect: bool = True,
    ) -> None:
        self._llm = llm
        self.perceiver = perceiver or Perceiver(asr=asr, captioner=captioner)
        self._asr = asr
        self.voice = voice or Voice()
        self.toolbox = toolbox or Toolbox()
        self.grounding = check_strictness(grounding)
        self.trust_models = trust_models
        self.native = native
        self.notes = notes
        self.examples = tuple(examples)
        self.affect = affect

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = create_llm()
        return self._llm

    @property
    def asr(self) -> ASR:
        return self._asr if self._asr is not None else self.perceiver.asr

    def ask(self, question: str | None = None, **inputs: Any) -> Answer:
        """Answer ``question`` (or the words spoken in ``audio`` when it is None); takes the
        keyword arguments of :meth:`ask_stream` and waits for the whole answer."""
        return self.ask_stream(question, **inputs).answer()

    def ask_stream(
        self,
        question: str | None = None,
        *,
        image: Any = None,
        audio: Any = None,
        video: Any = None,
        history: Sequence[ChatMessage] = (),
        config: GenerationConfig | None = None,
        context: PerceptionContext | None = None,
        attached: Mapping[str, Any] | None = None,
        on_finish: Callable[[Answer], None] | None = None,
    ) -> AnswerStream:
        """Answer ``question`` (or the words spoken in ``audio`` when it is None) about an
        ``image``, ``video`` or recording, yielding the answer as it is decoded.

        ``context`` holds things perceived earlier (a chat's attached image) and ``attached``
        the inputs themselves (``image``, ``video``), which the tools read again; inputs given
        here replace those of the same kind. When ``audio`` is the question its transcript is
        the question, not a note.
        """
        timed: list[ToolNote] = []
        speech = None if audio is None else self._timed(timed, "asr", self.asr.transcribe, audio)
        typed = (question or "").strip()
        question = typed or _spoken_question(speech)
        if speech is not None:
            timed[-1] = replace(timed[-1], text=f'"{speech.text}"')
            if self.affect and speech.text.strip():
                timed.append(hear_affect(speech.text, audio, self.perceiver.limits))
        inputs = dict(attached or {})
        if image is not None:
            inputs["image"] = self._timed(timed, "image", self._load_image, image)
        if video is not None:
            inputs["video"] = video
        context = self.perceive(
            image=inputs.get("image") if image is not None else None,
            video=video,
            speech=speech if typed else None,
            base=context,
            timed=timed,
        )
        request = ToolRequest(
            question,
            image=inputs.get("image"),
            question_audio=None if typed else audio,
            audio=audio if typed else None,
            video=inputs.get("video"),
        )
        tools = (*merge_timings(timed), *self.toolbox.consult(request))
        images, heard = self._native_media(request)
        notes = notes_text(context, tools) if self.notes or not (images or heard) else ""
        messages = build_messages(notes, question, history, examples=self.examples)
        messages[-1] = replace(messages[-1], images=images, audio=heard)
        refusal = premise_refusal(tools)  # the image contradicts what the question assumes
        pieces = (
            iter([refusal])
            if refusal is not None
            else self.llm.chat_stream(messages, config or DEFAULT_GENERATION)
        )
        return AnswerStream(
            pieces,
            question=question,
            transcript=speech.text if speech is not None else None,
            context=context,
            tools=tools,
            strictness=self.grounding,
            trust=self.trust_models,
            messages=messages,
            on_finish=on_finish,
        )

    def _native_media(self, request: ToolRequest) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The inputs the LLM takes itself (a backend that sees or hears), for the question's
        message: (images, recordings as ``(wave, rate)``) — the image, and the recording asked
        about or else the spoken question."""
        if not self.native:
            return (), ()
        takes = self.llm.modalities
        images = (request.image,) if "image" in takes and request.image is not None else ()
        source = request.audio if request.audio is not None else request.question_audio
        if "audio" not in takes or source is None:
            return images, ()
        wave = load_audio(source, limits=self.perceiver.limits)
        return images, ((wave, SAMPLE_RATE),)

    def _load_image(self, raw: Any) -> Any:
        return load_image(raw, limits=self.perceiver.limits)

    @staticmethod
    def _timed(timed: list[ToolNote], name: str, work: Callable[[Any], Any], value: Any) -> Any:
        """``work(value)``, recording its cost as a note of ``name`` (the text is filled later)."""
        start = time.perf_counter()
        result = work(value)
        timed.append(ToolNote(name, "", seconds=time.perf_counter() - start))
        return result

    def perceive(
        self,
        *,
        image: Any = None,
        video: Any = None,
        speech: Transcript | None = None,
        base: PerceptionContext | None = None,
        timed: list[ToolNote] | None = None,
    ) -> PerceptionContext:
        """``base`` with the given inputs perceived and put in place of its parts; what each
        perception cost joins ``timed`` as a note."""
        context = base or PerceptionContext()
        log: list[ToolNote] = [] if timed is None else timed
        if image is not None:
            seen = self._timed(log, "image", self.perceiver.see, image)
            context = replace(context, image=seen)
            log[-1] = replace(log[-1], text=seen.to_prompt())
        if video is not None:
            watched = self._timed(log, "video", self.perceiver.watch, video)
            context = replace(context, video=watched)
            log[-1] = replace(log[-1], text=watched.to_prompt())
        if speech is not None:
            context = replace(context, speech=speech)
        return context

    def speak(self, text: str, voice: Voice | None = None) -> np.ndarray:
        """``text`` spoken by espeak-ng (or the given voice): mono float32 at 16 kHz."""
        return synthesize(text, voice or self.voice)

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()


def _spoken_question(speech: Transcript | None) -> str:
    if speech is None:
        raise EmptyInputError("ask a question: give its text or a recording of it (audio)")
    if not speech.text.strip():
        raise InputError("no speech was heard in the question recording", modality="audio")
    return speech.text.strip()


def wav_bytes(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV file bytes of a float waveform (e.g. :meth:`Assistant.speak`'s)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


class ChatSession:
    """A conversation with an assistant: attachments are perceived once and stay attached;
    the last ``max_turns`` exchanges are sent as history."""

    def __init__(self, assistant: Assistant, *, max_turns: int = 4) -> None:
        self.assistant = assistant
        self.max_turns = max_turns
        self.context = PerceptionContext()
        self.attached: dict[str, Any] = {}
        self.history: list[ChatMessage] = []

    def attach(self, *, image: Any = None, video: Any = None) -> PerceptionContext:
        """Perceive an image or a video and keep it (and what was perceived) for the following
        questions, whose tools read it again."""
        if image is not None:
            image = self.assistant._load_image(image)
            self.attached["image"] = image
        if video is not None:
            self.attached["video"] = video
        self.context = self.assistant.perceive(image=image, video=video, base=self.context)
        return self.context

    def reset(self) -> None:
        """Forget the attachments and the history."""
        self.context = PerceptionContext()
        self.attached = {}
        self.history = []

    def ask_stream(
        self,
        question: str | None = None,
        *,
        audio: Any = None,
        config: GenerationConfig | None = None,
    ) -> AnswerStream:
        """Ask within the conversation; the exchange joins the history once it is complete."""
        return self.assistant.ask_stream(
            question,
            audio=audio,
            history=self.history[-2 * self.max_turns :] if self.max_turns else [],
            config=config,
            context=self.context,
            attached=self.attached,
            on_finish=self._remember,
        )

    def _remember(self, answer: Answer) -> None:
        self.history.append(ChatMessage("user", user_turn(answer.notes, answer.question)))
        self.history.append(ChatMessage("assistant", first_line(answer.raw) or answer.text))
