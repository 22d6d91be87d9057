"""``omnifuse transcribe``, ``speak``, ``ask`` and ``chat`` through Typer's runner, real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.eval.text_metrics import normalize_transcript

pytest.importorskip("faster_whisper")
pytest.importorskip("pocketsphinx")

QUESTION = "What kind of animal is shown?"
SMALL_LLM = ["--llm-config", "n_ctx=2048", "--no-ocr"]


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, speech_test: dict[str, tuple[Path, str]]
) -> dict[str, Path]:
    """A photo of a cat, a spoken question about it (espeak-ng), a real recorded utterance."""
    skimage_data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("cli")
    cat = root / "cat.png"
    Image.fromarray(skimage_data.chelsea()).save(cat)
    result = CliRunner().invoke(app, ["speak", QUESTION, "--out", str(root / "question.wav")])
    assert result.exit_code == 0, result.output
    return {
        "cat": cat,
        "question": root / "question.wav",
        "cards": speech_test["cards-001"][0],  # "ten of clubs"
    }


def test_speak_writes_a_16k_wav(files: dict[str, Path]) -> None:
    info = sf.info(str(files["question"]))
    assert info.samplerate == 16000 and info.channels == 1
    assert 1.0 < info.duration < 4.0


def test_transcribe_prints_text_or_json(files: dict[str, Path]) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["transcribe", str(files["cards"]), "--engine", "pocketsphinx"])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == "ten of clubs"
    as_json = runner.invoke(app, ["transcribe", str(files["cards"]), "--json"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert normalize_transcript(payload["text"]) == "ten of clubs"
    assert payload["language"] == "en"
    assert payload["duration_s"] == pytest.approx(1.095, abs=0.01)
    assert payload["segments"] and payload["segments"][0]["start"] >= 0.0


def test_transcribe_reports_a_missing_file(tmp_path: Path) -> None:
    from omnifuse.errors import InputNotFoundError

    result = CliRunner().invoke(app, ["transcribe", str(tmp_path / "none.wav")])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputNotFoundError)


def test_ask_needs_a_question() -> None:
    result = CliRunner().invoke(app, ["ask", "--image", "x.png"])
    assert result.exit_code == 2
    assert "QUESTION" in result.output


@pytest.mark.slow
def test_ask_with_a_spoken_question(files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    spoken = tmp_path / "answer.wav"
    result = CliRunner().invoke(
        app,
        [
            "ask",
            "--image",
            str(files["cat"]),
            "--audio",
            str(files["question"]),
            "--speak",
            str(spoken),
            "--json",
            *SMALL_LLM,
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert normalize_transcript(payload["transcript"]) == normalize_transcript(QUESTION)
    assert payload["question"] == payload["transcript"]
    assert payload["context"].startswith("Image: objects: cat")
    assert payload["answer"] and payload["raw"]
    assert [tool["name"] for tool in payload["tools"]] == ["asr", "affect", "image"]
    assert all(tool["seconds"] > 0 for tool in payload["tools"])
    assert isinstance(payload["grounded"], bool)
    assert sf.info(str(spoken)).duration > 0.2


@pytest.mark.slow
def test_chat_reads_commands_and_questions_from_stdin(files: dict[str, Path]) -> None:
    pytest.importorskip("llama_cpp")
    script = "\n".join(
        [
            f"/image {files['cat']}",
            "What animal is this?",
            "/context",
            "/image /no/such/picture.png",
            f"/audio {files['question']}",
            "/reset",
            "/context",
            "/quit",
            "this line is never read",
        ]
    )
    result = CliRunner().invoke(app, ["chat", *SMALL_LLM], input=script + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("assistant> ") == 2
    assert "Image: objects: " in result.stderr
    assert "InputNotFoundError" in result.stderr and "/no/such/picture.png" in result.stderr
    assert "heard:" in result.stderr
    assert "nothing attached" in result.stderr
    assert "never read" not in result.output
