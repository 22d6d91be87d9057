"""Speech recognition on real recordings (pocketsphinx-testdata through the speech-test builder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from omnifuse.errors import (
    ConfigError,
    EmptyInputError,
    InputError,
    InputNotFoundError,
    UnknownComponentError,
)
from omnifuse.eval.text_metrics import normalize_transcript, wer
from omnifuse.speech.asr import ASR, Transcript, create_asr, list_asrs
from omnifuse.threads import torch_threads

pytest.importorskip("faster_whisper")
pytest.importorskip("pocketsphinx")


@pytest.fixture(scope="module")
def whisper() -> ASR:
    return create_asr()


@pytest.fixture(scope="module")
def sphinx() -> ASR:
    return create_asr("pocketsphinx")


LIBRIVOX = "librivox-sense_and_sensibility_01_austen_64kb-0930"


def test_registry_lists_both_engines() -> None:
    assert {"faster-whisper", "pocketsphinx"} <= set(list_asrs())
    with pytest.raises(UnknownComponentError, match="faster-whisper"):
        create_asr("whisper-large")
    with pytest.raises(ConfigError):
        create_asr("faster-whisper", compute_type="fp4")


def test_faster_whisper_transcribes_real_speech(
    whisper: ASR, speech_test: dict[str, tuple[Path, str]]
) -> None:
    path, reference = speech_test[LIBRIVOX]
    with torch_threads(1):  # Whisper decodes on its own 2 threads; torch's count stays the caller's
        transcript = whisper.transcribe(path)
        assert torch.get_num_threads() == 1
    assert isinstance(transcript, Transcript)
    assert normalize_transcript(transcript.text) == reference  # "he might even have been ..."
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(3.29, abs=0.01)
    assert transcript.segments
    assert 0.0 <= transcript.segments[0].start < transcript.segments[-1].end
    assert transcript.segments[-1].end <= transcript.duration_s + 0.5


def test_faster_whisper_reads_bytes_and_resampled_arrays(
    whisper: ASR, speech_test: dict[str, tuple[Path, str]]
) -> None:
    path, reference = speech_test["cards-003"]  # "seven of clubs"
    from_bytes = whisper.transcribe(path.read_bytes())
    wave, rate = sf.read(str(path), dtype="float32")
    from_array = whisper.transcribe((wave[::2].copy(), rate // 2))  # 8 kHz input
    assert wer([from_bytes.text, from_array.text], [reference, reference]) == 0.0


def test_pocketsphinx_transcribes_cards_and_digits(
    sphinx: ASR, speech_test: dict[str, tuple[Path, str]]
) -> None:
    for key in ("cards-001", "tidigits-dhd.2934z"):
        path, reference = speech_test[key]
        transcript = sphinx.transcribe(path)
        assert transcript.text == reference
        assert [s.text for s in transcript.segments] == reference.split()
        starts = [s.start for s in transcript.segments]
        assert starts == sorted(starts)
        assert all(s.end > s.start for s in transcript.segments)


def test_bad_audio_raises_typed_errors(sphinx: ASR, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        sphinx.transcribe(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(EmptyInputError):
        sphinx.transcribe(empty)
    with pytest.raises(InputError, match="audio"):
        sphinx.transcribe(b"this is not audio at all" * 10)


CARD_PROMPT = "ten of clubs nine of hearts two of spades queen of diamonds"


def test_whisper_follows_a_prompt_and_refuses_languages_it_cannot_hear(
    whisper: ASR, sphinx: ASR, speech_test: dict[str, tuple[Path, str]]
) -> None:
    path, reference = speech_test["cards-001"]  # "ten of clubs"
    plain = whisper.transcribe(path, language="EN")
    prompted = whisper.transcribe(path, language="en", prompt=CARD_PROMPT)
    assert plain.text == "10 of clubs."  # Whisper writes numbers as digits by default ...
    assert prompted.text == reference  # ... and in the prompt's lower-case words when steered
    assert whisper.languages == ("en",)  # tiny.en
    with pytest.raises(ConfigError, match="transcribes en only; language 'fr'"):
        whisper.transcribe(path, language="fr")
    with pytest.raises(ConfigError, match="prompt"):
        sphinx.transcribe(path, prompt=CARD_PROMPT)
    assert sphinx.transcribe(path, language="en").text == reference
