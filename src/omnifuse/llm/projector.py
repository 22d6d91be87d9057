"""Embeddings into the LM: a projector maps fused multimodal tokens to a frozen LM's input
embeddings as a soft prompt (LLaVA-style), for captioning images and video clips and for
generative question answering.

The pieces, each in its own module:

- :class:`Projector` (``linear`` | ``mlp2``), :class:`SoftPrompt` (per-column pooling, optional
  token fusion, projection) and :class:`ProjectorLM` (soft prompt + frozen LM, loss on target
  tokens only, greedy generation) — :mod:`omnifuse.llm.proj_model`;
- the frozen LMs: the built-in word-level decoder (:mod:`omnifuse.llm.decoder`) or any local
  Hugging Face causal LM — :mod:`omnifuse.llm.proj_lm`;
- run settings (:class:`ProjectorConfig`, YAML) and :func:`train_projector` —
  :mod:`omnifuse.llm.proj_config`, :mod:`omnifuse.llm.proj_train`;
- the trained model in use: :func:`load_captioner` → ``.caption(images)``,
  :func:`load_answerer` → ``.answer(images, questions)`` — :mod:`omnifuse.llm.captioning`.
"""

from omnifuse.llm.captioning import (
    Captioner,
    ProjectorPipeline,
    VQAAnswerer,
    load_answerer,
    load_captioner,
    load_projector,
)
from omnifuse.llm.proj_config import ProjectorConfig, read_projector_config
from omnifuse.llm.proj_data import describe_clip
from omnifuse.llm.proj_lm import BuiltinLM, FrozenLM, HFCausalLM, load_frozen_lm
from omnifuse.llm.proj_model import PROJECTOR_KINDS, Projector, ProjectorLM, SoftPrompt, pool_tokens
from omnifuse.llm.proj_train import load_projector_lm, train_projector

__all__ = [
    "PROJECTOR_KINDS",
    "BuiltinLM",
    "Captioner",
    "FrozenLM",
    "HFCausalLM",
    "Projector",
    "ProjectorConfig",
    "ProjectorLM",
    "ProjectorPipeline",
    "SoftPrompt",
    "VQAAnswerer",
    "describe_clip",
    "load_answerer",
    "load_captioner",
    "load_frozen_lm",
    "load_projector",
    "load_projector_lm",
    "pool_tokens",
    "read_projector_config",
    "train_projector",
]
