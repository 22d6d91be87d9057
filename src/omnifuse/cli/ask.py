"""``omnifuse transcribe``, ``ask``, ``chat`` and ``speak``: speech in, answers out, speech back.

The answer streams to stdout as it is decoded; what was heard and perceived goes to stderr, so
``omnifuse ask ... > answer.txt`` keeps only the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from omnifuse.cli.render import console, console_err
from omnifuse.errors import OmnifuseError

if TYPE_CHECKING:
    from omnifuse.assistant.assistant import AnswerStream, Assistant, ChatSession
    from omnifuse.llm.base import GenerationConfig
    from omnifuse.speech.asr import Transcript

CHAT_HELP = """Type a question, or a command:
  /image PATH            attach an image (kept for the next questions)
  /video PATH            attach a video
  /audio PATH [QUESTION] ask the question spoken in PATH (or ask QUESTION about that recording)
  /context               show what is attached
  /reset                 forget attachments and history
  /quit                  leave (so does the end of input)"""

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


def parse_settings(entries: Sequence[str], option: str) -> dict[str, Any]:
    """``key=value`` entries → a dict; values parse as JSON when they can (2048, true)."""
    settings: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {entry!r}", param_hint=option)
        settings[key.strip()] = json_or_text(value)
    return settings


def json_or_text(text: str) -> Any:
    """A JSON value when ``text`` is one (2048, 0.5, true, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_assistant(
    llm: str, llm_config: Sequence[str], asr: str, captioner: Path | None, ocr: bool
) -> Assistant:
    """The assistant the options describe; every model loads when first used."""
    from omnifuse.assistant.assistant import Assistant
    from omnifuse.assistant.perception import Perceiver
    from omnifuse.llm.base import create_llm
    from omnifuse.speech.asr import create_asr

    settings = parse_settings(llm_config, "--llm-config")
    speech = create_asr(asr)
    caption_model = None
    if captioner is not None:
        from omnifuse.projector.captioning import load_captioner

        caption_model = load_captioner(captioner)
    perceiver = Perceiver(asr=speech, captioner=caption_model, ocr=ocr)
    return Assistant(llm=create_llm(llm, **settings), asr=speech, perceiver=perceiver)


def generation(max_tokens: int, temperature: float) -> GenerationConfig:
    from omnifuse.assistant.assistant import DEFAULT_GENERATION
    from omnifuse.llm.base import GenerationConfig

    return GenerationConfig(
        max_tokens=max_tokens, temperature=temperature, stop=DEFAULT_GENERATION.stop
    )


def show_perceived(stream: AnswerStream) -> None:
    """What was heard and what notes the LLM got, on stderr."""
    if stream.transcript is not None:
        console_err.print(f"[dim]heard:[/] {escape(stream.transcript)}")
    notes = stream.context.to_prompt()
    if notes:
        console_err.print(f"[dim]{escape(notes)}[/]")


def stream_out(stream: AnswerStream) -> str:
    """Write the answer to stdout piece by piece; returns the short answer."""
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return stream.answer().text


def speak_to(assistant: Assistant, text: str, out: Path) -> None:
    from omnifuse.speech.tts import write_wav

    write_wav(out, assistant.speak(text))
    console_err.print(f"[green]spoken[/] → {out}")


def transcribe(
    audio: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, MP3, a video's sound...).")],
    engine: Annotated[
        str, typer.Option(help="faster-whisper (default) or pocketsphinx.")
    ] = "faster-whisper",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print text, segments and duration as JSON.")
    ] = False,
    segments: Annotated[bool, typer.Option(help="Show the timed segments as a table.")] = False,
) -> None:
    """Transcribe speech in AUDIO."""
    from omnifuse.speech.asr import create_asr

    transcript = create_asr(engine).transcribe(audio)
    if as_json:
        sys.stdout.write(json.dumps(transcript.to_dict(), ensure_ascii=False) + "\n")
        return
    if segments:
        console.print(segments_table(transcript))
    sys.stdout.write(transcript.text + "\n")


def segments_table(transcript: Transcript) -> Table:
    table = Table(title=f"{transcript.duration_s:.2f} s of audio", title_justify="left")
    for column in ("start", "end", "text"):
        table.add_column(column, justify="left" if column == "text" else "right")
    for s in transcript.segments:
        table.add_row(f"{s.start:.2f}", f"{s.end:.2f}", escape(s.text))
    return table


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print answer, question and notes as JSON.")
    ] = False,
) -> None:
    """Answer a question about an image, a video or a recording; the question may be spoken."""
    if question is None and audio is None:
        raise typer.BadParameter("give a QUESTION or a spoken question with --audio")
    assistant = build_assistant(llm, llm_config or [], asr, captioner, ocr)
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
            payload = {
                "answer": answer.text,
                "raw": answer.raw,
                "question": answer.question,
                "transcript": answer.transcript,
                "context": answer.context.to_prompt(),
            }
            sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        else:
            show_perceived(stream)
            stream_out(stream)
            answer = stream.answer()
        if speak is not None:
            speak_to(assistant, answer.text, speak)
    finally:
        assistant.close()


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
) -> None:
    """Talk with the assistant: attach images, videos and spoken questions; history is kept."""
    from omnifuse.assistant.assistant import ChatSession

    assistant = build_assistant(llm, llm_config or [], asr, captioner, ocr)
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


def speak(
    text: Annotated[str, typer.Argument(help="What to say.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="WAV file to write (16 kHz).")],
    voice: Annotated[
        str, typer.Option(help="Voice name (espeak-ng: en-us, en-gb...; flite: slt, rms...).")
    ] = "en-us",
    engine: Annotated[str, typer.Option(help="espeak-ng or flite.")] = "espeak-ng",
    rate: Annotated[int, typer.Option(min=80, max=450, help="Words per minute.")] = 160,
) -> None:
    """Speak TEXT into a WAV file with a system TTS engine."""
    from omnifuse.speech.tts import SAMPLE_RATE, Voice, synthesize, write_wav

    wave = synthesize(text, Voice(engine, voice, rate=rate))
    write_wav(out, wave)
    console_err.print(f"[green]wrote[/] {out} ({len(wave) / SAMPLE_RATE:.2f} s)")
