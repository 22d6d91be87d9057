"""The affect note of a spoken question: real espeak-ng recordings, measured with Praat and read
by VADER; and the note reaching the LLM's prompt when the assistant hears a question."""

from __future__ import annotations

import numpy as np
import pytest

from omnifuse.assistant.affect import hear_affect
from omnifuse.assistant.assistant import Assistant, wav_bytes
from omnifuse.assistant.perception import Perceiver
from omnifuse.llm import LLM
from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize

UPSET = "This is terrible, I hate waiting in this awful queue."
PLEASED = "Thank you so much, the flowers are lovely and I feel wonderful."


def recording(text: str, voice: Voice, gain: float = 1.0) -> tuple[np.ndarray, int]:
    return synthesize(text, voice) * gain, SAMPLE_RATE


def test_fast_loud_upset_speech_against_slow_soft_pleased_speech() -> None:
    upset = hear_affect(UPSET, recording(UPSET, Voice(rate=250)))
    assert upset.name == "affect" and upset.seconds > 0
    assert upset.text.startswith("the voice is fast (") and ", loud (" in upset.text
    assert "the words are negative (VADER -0." in upset.text
    assert upset.data["words"]["vader_compound"] < -0.5
    pleased = hear_affect(PLEASED, recording(PLEASED, Voice(rate=100), gain=0.1))
    assert pleased.text.startswith("the voice is slow (") and ", soft (" in pleased.text
    assert "the words are positive (VADER +0." in pleased.text
    level = upset.data["voice"]["intensity_mean_db"] - pleased.data["voice"]["intensity_mean_db"]
    assert level > 15  # a tenth of the amplitude is 20 dB


def test_pitch_range_reads_as_flat_or_lively() -> None:
    flat = hear_affect(PLEASED, recording(PLEASED, Voice(pitch_range=30)))
    lively = hear_affect(PLEASED, recording(PLEASED, Voice(pitch_range=200)))
    assert "flat pitch" in flat.text and "lively pitch" in lively.text


def test_silence_and_broken_recordings_do_not_fail() -> None:
    silent = hear_affect("", (np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE))
    assert silent.text == "the voice is not measurable: no voiced speech"
    assert "words" not in silent.data
    broken = hear_affect("hello", b"RIFF1234")
    assert broken.text == "failed" and "UnsupportedFormatError" in broken.data["error"]


@pytest.fixture(scope="module")
def assistant(gemma: LLM) -> Assistant:
    pytest.importorskip("faster_whisper")
    return Assistant(llm=gemma, perceiver=Perceiver(ocr=False))


def test_a_spoken_question_carries_its_affect_to_the_llm(assistant: Assistant) -> None:
    question = "This queue is awful, I have been waiting here for hours. Why is it so slow?"
    spoken = wav_bytes(synthesize(question, Voice(rate=250)))
    stream = assistant.ask_stream(audio=spoken)
    assert [tool.name for tool in stream.tools] == ["asr", "affect"]
    note = stream.tools[1]
    assert stream.transcript is not None and note.seconds > 0
    assert note.text == hear_affect(stream.transcript, spoken).text  # words as ASR heard them
    assert note.text.startswith("the voice is fast (")
    assert f"affect: {note.text}" in stream.messages[-1].content
    stream.close()
    quiet = Assistant(llm=assistant.llm, perceiver=assistant.perceiver, affect=False)
    stream = quiet.ask_stream(audio=spoken)
    assert [tool.name for tool in stream.tools] == ["asr"]
    assert "affect:" not in stream.messages[-1].content
    stream.close()
