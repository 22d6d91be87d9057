"""Chat pieces of the llama.cpp backend: multimodal projectors (``mmproj``), OpenAI-style turns
with image parts, and rendering a conversation's prompt text to count its tokens.

A vision GGUF (Gemma 3, LLaVA, Qwen2.5-VL, MiniCPM-V…) comes as two files: the language model and
its ``mmproj`` projector, which llama.cpp's ``mtmd`` library loads next to it. llama-cpp-python's
multimodal chat handlers read images from data URLs inside ``image_url`` parts, encode them with
the projector and put the image tokens where the chat template says. ``mtmd`` (the default) uses
the chat template stored in the model GGUF; the named LLaVA-family handlers carry their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError
from omnifuse.llm.base import ChatMessage
from omnifuse.llm.media import image_data_url

MMPROJ_HANDLERS = {
    "mtmd": "MTMDChatHandler",
    "llava-1.5": "Llava15ChatHandler",
    "llava-1.6": "Llava16ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama-3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
}
"""``mmproj_handler`` name → llama-cpp-python chat handler class."""


def mmproj_handler(llama: Any, mmproj: Path, name: str, *, verbose: bool) -> Any:
    """A multimodal chat handler for ``mmproj`` attached to ``llama``, its projector loaded now,
    so a wrong or corrupt file fails at start-up with a ConfigError naming it."""
    from llama_cpp import llama_chat_format

    if name not in MMPROJ_HANDLERS:
        raise ConfigError(f"llama-cpp mmproj_handler must be one of {sorted(MMPROJ_HANDLERS)}")
    handler_class = getattr(llama_chat_format, MMPROJ_HANDLERS[name], None)
    if handler_class is None:
        raise ConfigError(
            f"this llama-cpp-python has no {MMPROJ_HANDLERS[name]} (mmproj_handler={name!r})"
        )
    try:
        handler = handler_class(clip_model_path=str(mmproj), verbose=verbose)
        # the handlers load the projector on the first chat; loading it here finds a bad file
        handler._init_mtmd_context(llama)
    except ValueError as exc:
        raise ConfigError(
            f"llama.cpp could not load the mmproj projector {str(mmproj)!r} for "
            f"{llama.model_path!r} (is it the projector that belongs to this model?): {exc}"
        ) from exc
    if name == "mtmd" and "tokenizer.chat_template" not in llama.metadata:
        raise ConfigError(
            f"mmproj_handler='mtmd' renders with the model GGUF's chat template, and "
            f"{llama.model_path!r} has none: name the model family's handler, one of "
            f"{sorted(set(MMPROJ_HANDLERS) - {'mtmd'})}"
        )
    return handler


def chat_turns(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI-style turns for llama-cpp-python: plain text, or for a message with images a list
    of ``image_url`` parts (PNG data URLs) followed by its text."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not message.images:
            turns.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}}
            for image in message.images
        ]
        parts.append({"type": "text", "text": message.content})
        turns.append({"role": message.role, "content": parts})
    return turns


def text_turns(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Turns with text only, for rendering a prompt whose images are counted separately."""
    return [{"role": m.role, "content": m.content} for m in messages]


def chat_formatter(llama: Any, chat_format: str | None) -> Any:
    """The llama-cpp-python chat formatter that renders this model's chat prompts: the GGUF's
    template, or the one behind a ``chat_format`` name; None when neither is available.

    Formatters registered by name are only reachable through the handler that wraps them, so
    this reads the handler's ``chat_formatter`` cell.
    """
    from llama_cpp import llama_chat_format

    if chat_format is None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        return jinja_formatter(llama, template, [llama.token_eos()])
    handler: Any = llama_chat_format.get_chat_completion_handler(chat_format)
    cells = dict(zip(handler.__code__.co_freevars, handler.__closure__ or (), strict=False))
    cell = cells.get("chat_formatter")
    return None if cell is None else cell.cell_contents


def jinja_formatter(llama: Any, template: str, stop_ids: list[int]) -> Any:
    """A Jinja2 chat formatter for ``template`` with this model's BOS/EOS text."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=template,
        eos_token=token_text(llama, llama.token_eos()),
        bos_token=token_text(llama, llama.token_bos()),
        stop_token_ids=stop_ids,
    )


def token_text(llama: Any, token: int) -> str:
    return str(llama.detokenize([token], special=True).decode("utf-8", errors="replace"))
