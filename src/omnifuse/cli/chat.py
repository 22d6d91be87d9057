"""``omnifuse chat``: talk with the assistant in the terminal; attachments and history are kept.

Answers stream to stdout; what was heard and attached goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from omnifuse.cli.ask import (
    AsrOption,
    CaptionerOption,
    LlmConfigOption,
    LlmOption,
    MaxTokensOption,
    OcrOption,
    TemperatureOption,
    build_assistant,
    generation,
    stream_out,
)
from omnifuse.cli.assistant_tools import (
    AlignOption,
    GroundingOption,
    IndexOption,
    ModelsOption,
    ToolOptions,
    ToolsOption,
    TrustOption,
)
from omnifuse.cli.render import console_err
from omnifuse.errors import OmnifuseError

if TYPE_CHECKING:
    from omnifuse.assistant.assistant import ChatSession
    from omnifuse.llm.base import GenerationConfig

CHAT_HELP = """Type a question, or a command:
  /image PATH            attach an image (kept for the next questions)
  /video PATH            attach a video
  /audio PATH [QUESTION] ask the question spoken in PATH (or ask QUESTION about that recording)
  /context               show what is attached
  /reset                 forget attachments and history
  /quit                  leave (so does the end of input)"""


def chat(
    image: Annotated[Path | None, typer.Option(help="An image to attach at the start.")] = None,
    video: Annotated[Path | None, typer.Option(help="A video to attach at the start.")] = None,
    llm: LlmOption = "llama-cpp",
    llm_config: LlmConfigOption = None,
    asr: AsrOption = "faster-whisper",
    captioner: CaptionerOption = None,
    ocr: OcrOption = True,
    max_tokens: MaxTokensOption = 64,
    temperature: TemperatureOption = 0.0,
    history: Annotated[int, typer.Option(min=0, help="Earlier exchanges sent along.")] = 4,
    model: ModelsOption = None,
    index: IndexOption = None,
    align: AlignOption = None,
    tools: ToolsOption = None,
    grounding: GroundingOption = "normal",
    trust_models: TrustOption = True,
) -> None:
    """Talk with the assistant: attach images, videos and spoken questions; history is kept."""
    from omnifuse.assistant.assistant import ChatSession

    options = ToolOptions(model or [], index, align, tools, grounding, trust_models)
    assistant = build_assistant(llm, llm_config or [], asr, captioner, ocr, options)
    session = ChatSession(assistant, max_turns=history)
    config = generation(max_tokens, temperature)
    console_err.print(CHAT_HELP)
    try:
        if image is not None or video is not None:
            attach(session, image=image, video=video)
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                continue
            if chat_turn(session, line, config) is False:
                break
    finally:
        assistant.close()


def attach(session: ChatSession, *, image: Any = None, video: Any = None) -> None:
    context = session.attach(image=image, video=video)
    console_err.print(f"[dim]{escape(context.to_prompt())}[/]")


def chat_turn(session: ChatSession, line: str, config: GenerationConfig) -> bool:
    """Run one line of the chat; False when the user wants to leave. Bad input is reported
    and the chat goes on."""
    command, _, rest = line.partition(" ") if line.startswith("/") else ("", "", line)
    rest = rest.strip()
    try:
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            console_err.print(CHAT_HELP)
        elif command == "/reset":
            session.reset()
            console_err.print("[dim]attachments and history cleared[/]")
        elif command == "/context":
            console_err.print(escape(session.context.to_prompt() or "nothing attached"))
        elif command in ("/image", "/video") and rest:
            attach(session, **{command[1:]: Path(rest).expanduser()})
        elif command == "/audio" and rest:
            path, _, question = rest.partition(" ")
            answer_turn(session, question or None, Path(path).expanduser(), config)
        elif command:
            console_err.print(f"[yellow]unknown command or missing path:[/] {escape(line)}")
        else:
            answer_turn(session, rest, None, config)
    except OmnifuseError as err:
        console_err.print(f"[bold red]error:[/] {type(err).__name__}: {escape(str(err))}")
    return True


def answer_turn(
    session: ChatSession, question: str | None, audio: Path | None, config: GenerationConfig
) -> None:
    stream = session.ask_stream(question, audio=audio, config=config)
    if stream.transcript is not None:
        console_err.print(f"[dim]heard:[/] {escape(stream.transcript)}")
    sys.stdout.write("assistant> ")
    stream_out(stream)
