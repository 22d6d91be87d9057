"""Embeddings into the LM: a projector maps fused multimodal tokens to a frozen LM's input
embeddings as a soft prompt (LLaVA-style), for captioning images and video clips and for
generative question answering.

The pieces, each in its own module:

- :class:`Projector` (``linear`` | ``mlp2``), :class:`SoftPrompt` (per-column pooling, optional
  token fusion, projection) and :class:`ProjectorLM` (soft prompt + frozen LM, loss on target
  tokens only, greedy generation) — :mod:`omnifuse.projector.model`;
- the frozen LMs: the built-in word-level decoder (:mod:`omnifuse.projector.decoder`), any local
  Hugging Face causal LM, or a packaged one by name (``gemma-3-270m``, converted from its GGUF
  on first use: :mod:`omnifuse.llm.gguf_hf`) — :mod:`omnifuse.projector.lm`;
- run settings (:class:`ProjectorConfig`, YAML) and :func:`train_projector` —
  :mod:`omnifuse.projector.config`, :mod:`omnifuse.projector.train`;
- the trained model in use: :func:`load_captioner` → ``.caption(images)``,
  :func:`load_answerer` → ``.answer(images, questions)`` — :mod:`omnifuse.projector.captioning`.

Names are imported from their submodules on first use, so loading the built-in decoder or a
config never imports the training code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnifuse.lazy import lazy_exports

if TYPE_CHECKING:
    from omnifuse.projector.captioning import (
        Captioner,
        ProjectorPipeline,
        VQAAnswerer,
        load_answerer,
        load_captioner,
        load_projector,
    )
    from omnifuse.projector.config import ProjectorConfig, read_projector_config
    from omnifuse.projector.data import describe_clip
    from omnifuse.projector.lm import BuiltinLM, FrozenLM, HFCausalLM, load_frozen_lm
    from omnifuse.projector.model import PROJECTOR_KINDS, Projector, ProjectorLM, SoftPrompt
    from omnifuse.projector.train import load_projector_lm, train_projector

_HOMES = {
    "Captioner": "captioning",
    "ProjectorPipeline": "captioning",
    "VQAAnswerer": "captioning",
    "load_answerer": "captioning",
    "load_captioner": "captioning",
    "load_projector": "captioning",
    "ProjectorConfig": "config",
    "read_projector_config": "config",
    "describe_clip": "data",
    "BuiltinLM": "lm",
    "FrozenLM": "lm",
    "HFCausalLM": "lm",
    "load_frozen_lm": "lm",
    "PROJECTOR_KINDS": "model",
    "Projector": "model",
    "ProjectorLM": "model",
    "SoftPrompt": "model",
    "load_projector_lm": "train",
    "train_projector": "train",
}

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
    "read_projector_config",
    "train_projector",
]


__getattr__ = lazy_exports(__name__, _HOMES, globals())
