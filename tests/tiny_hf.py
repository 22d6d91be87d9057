"""Tiny Hugging Face architectures that tests build offline from random weights: the language
model behind the LM backends and the projector, and the speech encoder behind ``hf-audio``.

Tests in any folder import this module by its bare name: the root ``conftest.py`` puts this
folder on ``sys.path``.
"""

from __future__ import annotations

from typing import Any


def tiny_llama(tokenizer: Any, *, hidden: int, context: int, **extra: Any) -> Any:
    """A 2-layer Llama-architecture causal LM (4 heads sharing 2 key-value heads) sized for
    ``tokenizer`` and using its special tokens, initialised from seed 0."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    return LlamaForCausalLM(config)


def tiny_wav2vec2_config(norm: str) -> Any:
    """A 1-layer, 32-wide wav2vec 2.0 with two convolutions (a frame every 40 samples);
    ``norm`` is the feature extractor's: ``group`` (base models) or ``layer`` (large ones, which
    also normalise before each transformer layer). No masking or layer drop while training."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_kernel=(10, 8),
        conv_stride=(5, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
        mask_time_prob=0.0,
        layerdrop=0.0,
    )
