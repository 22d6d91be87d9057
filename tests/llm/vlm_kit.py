"""A tiny LLaVA that tests build offline from random weights, for the hf-vision backend.

Test modules import it by its bare name, as pytest puts this folder on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VLM_SENTENCES = ("what is in the picture?", "a red square.", "a blue circle.")
VLM_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
"""A LLaVA-style turn template: each image entry becomes one ``<image>`` placeholder, which the
processor expands into the vision tower's patch tokens."""
VLM_IMAGE_SIZE = 32
VLM_PATCH = 8
VLM_IMAGE_TOKENS = (VLM_IMAGE_SIZE // VLM_PATCH) ** 2
"""Patch tokens per image (the CLS token is dropped by the ``default`` feature selection)."""


def build_tiny_vlm(
    folder: Path, tokenizer: Any, *, chat_template: str | None = VLM_TEMPLATE
) -> None:
    """Save a random-weight LLaVA sized for ``tokenizer`` (``<image>`` is added to it) and its
    processor in ``folder``; ``chat_template=None`` leaves the processor without one."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=VLM_IMAGE_SIZE,
        patch_size=VLM_PATCH,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    size = {"height": VLM_IMAGE_SIZE, "width": VLM_IMAGE_SIZE}
    images = CLIPImageProcessor(size={"shortest_edge": VLM_IMAGE_SIZE}, crop_size=size)
    processor = LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=VLM_PATCH,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
