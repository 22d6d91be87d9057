"""Contrastive alignment: every modality projected into one shared space.

CLIP-style projection heads over frozen encoders trained with a symmetric InfoNCE and a learnable
temperature (:func:`train_alignment`), ImageBind-style binding of a further modality (speech) to
an anchor, zero-shot classification by text prompts (:class:`ZeroShotClassifier`), and model
folders that :func:`load_aligned` turns back into an :class:`AlignedModel` whose ``embed``
serves search and the HTTP API.

Names are imported from their submodules on first use, so a server that only loads aligned
models never imports the training code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnifuse.lazy import lazy_exports

if TYPE_CHECKING:
    from omnifuse.align.config import (
        AlignConfig,
        AlignData,
        AlignTrain,
        Binding,
        HeadConfig,
        read_align_config,
        write_align_config,
    )
    from omnifuse.align.loss import info_nce
    from omnifuse.align.model import (
        AlignedModel,
        InvalidAlignedModelError,
        load_aligned,
        read_metrics,
        save_aligned,
    )
    from omnifuse.align.train import AlignResult, train_alignment
    from omnifuse.align.zeroshot import DEFAULT_TEMPLATES, ZeroShotClassifier

_HOMES = {
    "AlignConfig": "config",
    "AlignData": "config",
    "AlignTrain": "config",
    "Binding": "config",
    "HeadConfig": "config",
    "read_align_config": "config",
    "write_align_config": "config",
    "info_nce": "loss",
    "AlignedModel": "model",
    "InvalidAlignedModelError": "model",
    "load_aligned": "model",
    "read_metrics": "model",
    "save_aligned": "model",
    "AlignResult": "train",
    "train_alignment": "train",
    "DEFAULT_TEMPLATES": "zeroshot",
    "ZeroShotClassifier": "zeroshot",
}

__all__ = [
    "DEFAULT_TEMPLATES",
    "AlignConfig",
    "AlignData",
    "AlignResult",
    "AlignTrain",
    "AlignedModel",
    "Binding",
    "HeadConfig",
    "InvalidAlignedModelError",
    "ZeroShotClassifier",
    "info_nce",
    "load_aligned",
    "read_align_config",
    "read_metrics",
    "save_aligned",
    "train_alignment",
    "write_align_config",
]


__getattr__ = lazy_exports(__name__, _HOMES, globals())
