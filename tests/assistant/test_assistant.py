"""The assistant end to end with the real models: a spoken question about a photo, answered by
Gemma-3-270M through llama.cpp; streaming, chat history, speech out; prompt helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnifuse.assistant.assistant import (
    DEFAULT_GENERATION,
    Answer,
    Assistant,
    ChatSession,
    wav_bytes,
)
from omnifuse.assistant.perception import ImagePerception, Perceiver, PerceptionContext
from omnifuse.assistant.prompts import (
    FEW_SHOT,
    SYSTEM_PROMPT,
    build_messages,
    question_kind,
    short_answer,
    user_turn,
)
from omnifuse.errors import EmptyInputError, InputError
from omnifuse.eval.text_metrics import normalize_transcript
from omnifuse.llm import LLM, ChatMessage
from omnifuse.speech.tts import SAMPLE_RATE, synthesize

pytest.importorskip("faster_whisper")
pytest.importorskip("rapidocr_onnxruntime")

CAT_LABELS = {"tiger cat", "Egyptian cat", "tabby"}
SPOKEN_QUESTION = "What kind of animal is shown?"


@pytest.fixture(scope="module")
def assistant(gemma: LLM) -> Assistant:
    return Assistant(llm=gemma, perceiver=Perceiver(ocr=False))


@pytest.fixture(scope="module")
def spoken_question() -> bytes:
    """The question spoken by espeak-ng, as WAV file bytes."""
    return wav_bytes(synthesize(SPOKEN_QUESTION))


def test_spoken_question_about_a_photo(
    assistant: Assistant, chelsea: Image.Image, spoken_question: bytes
) -> None:
    answer = assistant.ask(image=chelsea, audio=spoken_question)
    assert isinstance(answer, Answer)
    assert answer.transcript is not None
    assert normalize_transcript(answer.transcript) == normalize_transcript(SPOKEN_QUESTION)
    assert answer.question == answer.transcript
    assert answer.context.speech is None  # the recording was the question, not a note
    assert answer.context.image is not None
    assert answer.context.image.labels[0][0] in CAT_LABELS
    assert answer.context.to_prompt().startswith("Image: objects: cat ")
    assert "labels:" not in answer.context.to_prompt()  # folded into "cat"
    assert answer.raw.strip() and answer.grounded, answer
    assert answer.text == short_answer(answer.raw, answer.question)
    assert "\n" not in answer.raw
    assert any(word in answer.raw.lower() for word in ("cat", "tiger", "tabby"))


def test_stream_yields_the_answer_pieces(assistant: Assistant, chelsea: Image.Image) -> None:
    stream = assistant.ask_stream("Is there an animal in the picture?", image=chelsea)
    assert stream.question == "Is there an animal in the picture?"
    assert stream.transcript is None
    assert stream.context.image is not None
    pieces = list(stream)
    answer = stream.answer()
    assert pieces and "".join(pieces) == answer.raw
    assert not pieces[0][:1].isspace()
    assert answer.text in ("yes", "no") or answer.text == answer.raw


def test_typed_question_about_a_recording_keeps_the_speech_note(
    assistant: Assistant, spoken_question: bytes
) -> None:
    stream = assistant.ask_stream("What did the speaker ask?", audio=spoken_question)
    assert stream.question == "What did the speaker ask?"
    assert stream.transcript is not None
    assert stream.context.to_prompt() == f'Speech: "{stream.transcript}"'
    stream.close()


def test_chat_session_keeps_attachments_and_history(
    assistant: Assistant, chelsea: Image.Image
) -> None:
    session = ChatSession(assistant, max_turns=1)
    context = session.attach(image=chelsea)
    assert context.image is not None and session.context is context
    first = session.ask_stream("What animal is this?").answer()
    assert first.context.image == context.image
    assert session.history == [
        ChatMessage("user", user_turn(context.to_prompt(), "What animal is this?")),
        ChatMessage("assistant", first.raw.strip()),
    ]
    second = session.ask_stream("Is it a dog?").answer()
    assert second.context.image == context.image
    assert len(session.history) == 4
    session.reset()
    assert session.history == [] and session.context.is_empty


def test_speak_round_trips_through_asr(assistant: Assistant) -> None:
    wave = assistant.speak(SPOKEN_QUESTION)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 1.0 < len(wave) / SAMPLE_RATE < 4.0
    heard = assistant.asr.transcribe((wave, SAMPLE_RATE)).text
    assert normalize_transcript(heard) == normalize_transcript(SPOKEN_QUESTION)
    decoded, rate = sf.read(io.BytesIO(wav_bytes(wave)), dtype="float32")
    assert rate == SAMPLE_RATE and len(decoded) == len(wave)
    assert float(np.abs(decoded - wave).max()) < 1e-3


def test_missing_or_silent_question_raises(assistant: Assistant) -> None:
    with pytest.raises(EmptyInputError, match="question"):
        assistant.ask_stream(image=None)
    silence = wav_bytes(np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(InputError, match="no speech"):
        assistant.ask_stream(audio=silence)


def test_default_generation_is_greedy_and_one_line() -> None:
    assert DEFAULT_GENERATION.temperature == 0.0
    assert DEFAULT_GENERATION.stop == ("\n",)


def test_messages_open_with_system_prompt_and_examples() -> None:
    history = [ChatMessage("user", "Notes: none\nQuestion: hi"), ChatMessage("assistant", "hello")]
    messages = build_messages("Image: labels: tabby 40%", "what is it?", history)
    assert messages[0] == ChatMessage("system", SYSTEM_PROMPT)
    assert len(messages) == 1 + 2 * len(FEW_SHOT) + 2 + 1
    assert messages[1].content == user_turn(FEW_SHOT[0][0], FEW_SHOT[0][1])
    assert messages[2] == ChatMessage("assistant", FEW_SHOT[0][2])
    assert messages[-3:-1] == history
    assert messages[-1] == ChatMessage(
        "user", "Notes: Image: labels: tabby 40%\nQuestion: what is it?"
    )
    assert (
        build_messages("", "q?", examples=(), system="")[0].content == "Notes: none\nQuestion: q?"
    )


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("is there a red star?", "yes-no"),
        ("Can you see a purple star?", "yes-no"),
        ("how many triangles are there?", "count"),
        ("What color is the circle?", "colour"),
        ("what colour is the shape to the left of the star?", "colour"),
        ("is the yellow square small or large?", "choice"),
        ("what shape is above the cyan star?", "open"),
    ],
)
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question) == kind


@pytest.mark.parametrize(
    ("raw", "question", "expected"),
    [
        ("Yes, there is.\nUser: more", "is there a red star?", "yes"),
        ("No.", "Does it move?", "no"),
        ("There are three triangles.", "how many triangles are there?", "3"),
        ("12", "How many shapes?", "12"),
        ("It is dark blue.", "what colour is the square?", "blue"),
        ("The square is large.", "is the square small or large?", "large"),
        ("  A triangle.\n", "what shape is above the star?", "A triangle."),
        ("I am not sure", "how many shapes are there?", "I am not sure"),
    ],
)
def test_short_answers(raw: str, question: str, expected: str) -> None:
    assert short_answer(raw, question) == expected


def test_context_argument_supplies_earlier_perception(assistant: Assistant) -> None:
    earlier = PerceptionContext(image=ImagePerception(labels=[("espresso", 0.9)]))
    context = assistant.perceive(base=earlier)
    assert context == earlier
    assert assistant.perceive(base=None) == PerceptionContext()
