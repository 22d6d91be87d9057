"""``omnifuse ask``: answer a question about an image, a video or a recording; the question may
be spoken. The assistant's options and how they build it live here; ``omnifuse chat`` shares them.

The answer streams to stdout as it is decoded; what was heard and perceived goes to stderr, so
``omnifuse ask ... > answer.txt`` keeps only the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from omnifuse.cli.assistant_tools import (
    AlignOption,
    GroundingOption,
    IndexOption,
    ModelsOption,
    ToolOptions,
    ToolsOption,
    TrustOption,
)
from omnifuse.cli.options import parse_options
from omnifuse.cli.render import console_err

if TYPE_CHECKING:
    from omnifuse.assistant.assistant import Answer, AnswerStream, Assistant
    from omnifuse.llm.base import GenerationConfig

LlmOption = Annotated[str, typer.Option("--llm", help="LLM backend: llama-cpp, hf or openai.")]
LlmConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--llm-config",
        "-c",
        help="key=value for the backend (model_path=..., base_url=..., n_ctx=2048); repeatable.",
    ),
]
AsrOption = Annotated[
    str, typer.Option("--asr", help="Speech recogniser: faster-whisper or pocketsphinx.")
]
CaptionerOption = Annotated[
    Path | None,
    typer.Option(help="A captioner folder (omnifuse projector) whose captions join the notes."),
]
OcrOption = Annotated[bool, typer.Option(help="Read text in images (rapidocr).")]
MaxTokensOption = Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")]
TemperatureOption = Annotated[float, typer.Option(min=0.0, help="0 decodes greedily.")]


def build_assistant(
    llm: str,
    llm_config: Sequence[str],
    asr: str,
    captioner: Path | None,
    ocr: bool,
    tools: ToolOptions | None = None,
) -> Assistant:
    """The assistant the options describe; every model loads when first used."""
    from omnifuse.assistant.assistant import Assistant
    from omnifuse.assistant.perception import Perceiver
    from omnifuse.llm.base import create_llm
    from omnifuse.speech.asr import create_asr

    settings = parse_options(llm_config, "--llm-config")
    speech = create_asr(asr)
    caption_model = None
    if captioner is not None:
        from omnifuse.projector.captioning import load_captioner

        caption_model = load_captioner(captioner)
    perceiver = Perceiver(asr=speech, captioner=caption_model, ocr=ocr)
    tools = tools or ToolOptions()
    return Assistant(
        llm=create_llm(llm, **settings),
        asr=speech,
        perceiver=perceiver,
        toolbox=tools.toolbox(),
        grounding=tools.grounding,
        trust_models=0.0 if tools.trust_models else None,
    )


def generation(max_tokens: int, temperature: float) -> GenerationConfig:
    from omnifuse.assistant.assistant import DEFAULT_GENERATION
    from omnifuse.llm.base import GenerationConfig

    return GenerationConfig(
        max_tokens=max_tokens, temperature=temperature, stop=DEFAULT_GENERATION.stop
    )


def show_perceived(stream: AnswerStream) -> None:
    """What was heard and what each tool said (with its cost), on stderr."""
    if stream.transcript is not None:
        console_err.print(f"[dim]heard:[/] {escape(stream.transcript)}")
    for note in stream.tools:
        if note.name != "asr":
            console_err.print(f"[dim]{escape(note.to_prompt())} [{note.seconds:.2f} s][/]")


def stream_out(stream: AnswerStream) -> str:
    """Write the LLM's reply to stdout piece by piece, then the short answer when it differs
    (a trusted model's answer, or that the notes do not support the reply); returns it."""
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    answer = stream.answer()
    if answer.text.strip() != answer.raw.strip():
        sys.stdout.write(f"answer: {answer.text}\n")
    sys.stdout.flush()
    return answer.text


def answer_json(answer: Answer) -> str:
    """The answer as ``omnifuse ask --json`` prints it: short answer, LLM reply, question,
    transcript, the notes the LLM read, whether they supported the reply, and every tool."""
    payload = {
        "answer": answer.text,
        "raw": answer.raw,
        "question": answer.question,
        "transcript": answer.transcript,
        "context": answer.notes,
        "grounded": answer.grounded,
        "tools": [note.to_dict() for note in answer.tools],
    }
    return json.dumps(payload, ensure_ascii=False)


def speak_to(assistant: Assistant, text: str, out: Path) -> None:
    from omnifuse.speech.tts import write_wav

    write_wav(out, assistant.speak(text))
    console_err.print(f"[green]spoken[/] → {out}")


def ask(
    question: Annotated[
        str | None, typer.Argument(help="The question; leave out to ask it with --audio.")
    ] = None,
    image: Annotated[Path | None, typer.Option(help="An image to ask about.")] = None,
    audio: Annotated[
        Path | None,
        typer.Option(help="The spoken question (or, with QUESTION, a recording to ask about)."),
    ] = None,
    video: Annotated[Path | None, typer.Option(help="A video to ask about.")] = None,
    speak: Annotated[
        Path | None, typer.Option(help="Also write the answer, spoken, to this WAV file.")
    ] = None,
    llm: LlmOption = "llama-cpp",
    llm_config: LlmConfigOption = None,
    asr: AsrOption = "faster-whisper",
    captioner: CaptionerOption = None,
    ocr: OcrOption = True,
    max_tokens: MaxTokensOption = 64,
    temperature: TemperatureOption = 0.0,
    model: ModelsOption = None,
    index: IndexOption = None,
    align: AlignOption = None,
    tools: ToolsOption = None,
    grounding: GroundingOption = "normal",
    trust_models: TrustOption = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print answer, question, notes and tools as JSON.")
    ] = False,
) -> None:
    """Answer a question about an image, a video or a recording; the question may be spoken."""
    if question is None and audio is None:
        raise typer.BadParameter("give a QUESTION or a spoken question with --audio")
    options = ToolOptions(model or [], index, align, tools, grounding, trust_models)
    assistant = build_assistant(llm, llm_config or [], asr, captioner, ocr, options)
    try:
        stream = assistant.ask_stream(
            question,
            image=image,
            audio=audio,
            video=video,
            config=generation(max_tokens, temperature),
        )
        if as_json:
            answer = stream.answer()
            sys.stdout.write(answer_json(answer) + "\n")
        else:
            show_perceived(stream)
            stream_out(stream)
            answer = stream.answer()
        if speak is not None:
            speak_to(assistant, answer.text, speak)
    finally:
        assistant.close()
