"""Scoring generated text (:mod:`omnifuse.eval.text_metrics`): captions by BLEU-4, ROUGE-L and
CIDEr-D, answers by exact match (overall and per question type)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from omnifuse.eval import text_metrics
from omnifuse.progress import track
from omnifuse.projector.data import ProjectorBatch, ProjectorDataset, TextSample, collate_projector
from omnifuse.projector.model import ProjectorLM

CAPTION_TASKS = ("caption", "video-caption")
EXAMPLES = 5


def caption_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-4 and ROUGE-L F1 (fractions) and CIDEr-D (0-10) against one reference each."""
    return text_metrics.caption_report(hyps, [[r] for r in refs])


def answer_hit(hyp: str, ref: str) -> bool:
    """Whether an answer matches its reference after VQA answer normalisation."""
    return text_metrics.normalize_answer(hyp) == text_metrics.normalize_answer(ref)


def generate_texts(
    model: ProjectorLM,
    data: ProjectorDataset,
    *,
    max_tokens: int,
    batch_size: int = 64,
    progress: bool = False,
) -> list[str]:
    """Greedy generations for every sample of ``data``, in order."""
    device = next(model.parameters()).device
    batches = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_projector)
    iterator = track(batches, "generating") if progress else batches
    out: list[str] = []
    model.eval()
    with torch.no_grad():
        for batch in iterator:
            out += generate_batch(model, batch, max_tokens=max_tokens, device=device)
    return out


def generate_batch(
    model: ProjectorLM, batch: ProjectorBatch, *, max_tokens: int, device: torch.device
) -> list[str]:
    features = {c: e.to(device) for c, e in batch.features.features.items()}
    present = batch.features.present.to(device)
    prompts = [t.prompt_ids for t in batch.texts]
    ids = model.generate(features, present, prompts, max_tokens=max_tokens)
    return [model.lm.decode(row) for row in ids]


def score_texts(task: str, hyps: Sequence[str], texts: Sequence[TextSample]) -> dict[str, Any]:
    """The task's metrics of ``hyps`` against the targets of ``texts``, with a few examples."""
    refs = [t.target for t in texts]
    metrics: dict[str, Any] = {
        "count": len(hyps),
        "exact_match": text_metrics.exact_match(hyps, refs) if hyps else 0.0,
    }
    if task in CAPTION_TASKS:
        metrics.update(caption_scores(hyps, refs))
    else:
        metrics["accuracy"] = metrics["exact_match"]
        by_group: dict[str, list[bool]] = defaultdict(list)
        for hyp, text in zip(hyps, texts, strict=True):
            if text.group is not None:
                by_group[text.group].append(answer_hit(hyp, text.target))
        if by_group:
            metrics["accuracy_by_qtype"] = {g: sum(v) / len(v) for g, v in sorted(by_group.items())}
    metrics["examples"] = [
        {"prompt": t.prompt, "target": t.target, "generated": h}
        for h, t in zip(hyps[:EXAMPLES], texts[:EXAMPLES], strict=False)
    ]
    return metrics
