"""Contrastive alignment: every modality projected into one shared space.

CLIP-style projection heads over frozen encoders trained with a symmetric InfoNCE and a learnable
temperature (:func:`train_alignment`), ImageBind-style binding of a further modality (speech) to
an anchor, zero-shot classification by text prompts (:class:`ZeroShotClassifier`), and model
folders that :func:`load_aligned` turns back into an :class:`AlignedModel` whose ``embed``
serves search and the HTTP API.
"""

from omnifuse.align.config import (
    AlignCache,
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

__all__ = [
    "DEFAULT_TEMPLATES",
    "AlignCache",
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
