"""Training the projector route: data and features, the frozen LM, the soft-prompt side, the
model folder.

``train_projector(config, out)``:

1. builds the dataset if needed and caches the frozen encoders' token features;
2. gets the LM: the built-in decoder is pretrained on the training split's text (see
   :func:`~omnifuse.projector.data.lm_corpus`) and saved in ``out/lm``, an ``hf`` LM is read from
   its folder; either way it is frozen from then on;
3. trains the soft prompt (norms, optional fusion, projector) with AdamW and warmup-cosine on the
   target tokens' cross-entropy, keeping the weights of the best validation loss;
4. generates for the validation and test splits and scores them (captions: BLEU-4, ROUGE-L,
   CIDEr; answers: exact match per question type);
5. writes ``out``: ``config.json``, ``model.safetensors`` (soft-prompt side only), ``metrics.json``,
   ``metrics.jsonl`` (per epoch) and ``lm/`` for the built-in LM.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from omnifuse.data.cache import FeatureCache
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError
from omnifuse.fileio import FolderFormat, cpu_state
from omnifuse.projector.config import ProjectorConfig, ProjectorTrainConfig
from omnifuse.projector.data import (
    ProjectorBatch,
    ProjectorDataset,
    collate_projector,
    encode_features,
    lm_corpus,
    prepare_manifest,
)
from omnifuse.projector.decoder import DecoderConfig, save_decoder
from omnifuse.projector.evaluate import generate_texts, score_texts
from omnifuse.projector.lm import BuiltinLM, FrozenLM, load_frozen_lm
from omnifuse.projector.model import ProjectorLM, SoftPrompt
from omnifuse.projector.pretrain import pretrain_decoder
from omnifuse.threads import torch_threads
from omnifuse.train import distributed
from omnifuse.train.loop import fit as fit_loop
from omnifuse.train.objective import DataObjective, decay_groups

PROJECTOR_FOLDER = FolderFormat("omnifuse-projector", "projector")
LM_DIR = "lm"
EVAL_SPLITS = ("val", "test")


def prepare_lm(config: ProjectorConfig, manifest: Manifest, out: Path) -> FrozenLM:
    """The frozen LM: an existing folder, or the built-in decoder pretrained now into
    ``out/lm`` on :func:`~omnifuse.projector.data.lm_corpus`."""
    spec = config.lm
    if spec.path:
        return load_frozen_lm({"kind": spec.kind, "path": spec.path, "dtype": spec.dtype})
    texts = lm_corpus(config, manifest)
    result = pretrain_decoder(
        texts,
        DecoderConfig(vocab_size=1, **spec.size),
        spec.pretrain_config(),
        device=resolve_device(config.train.device),
        progress=config.train.progress,
    )
    metrics = {"texts": len(texts), "history": result.history, "seconds": result.seconds}
    folder = out / LM_DIR
    if distributed.is_main():
        save_decoder(folder, result.model, result.tokenizer, metrics)
    return BuiltinLM(result.model.cpu(), result.tokenizer, folder)


def build_projector_lm(
    config: ProjectorConfig, dims: Mapping[str, int], lm: FrozenLM
) -> ProjectorLM:
    spec = config.projector
    prompt = SoftPrompt(
        dims,
        lm.embed_dim,
        tokens=spec.tokens,
        kind=spec.kind,
        hidden=spec.hidden,
        fusion=spec.fusion,
        fusion_cfg=spec.fusion_cfg,
    )
    return ProjectorLM(lm, prompt)


def batch_loss(model: ProjectorLM, batch: ProjectorBatch, device: torch.device) -> torch.Tensor:
    features = {c: e.to(device) for c, e in batch.features.features.items()}
    present = batch.features.present.to(device)
    prompts = [t.prompt_ids for t in batch.texts]
    targets = [t.target_ids for t in batch.texts]
    return model.loss(features, present, prompts, targets)


class ProjectorObjective(DataObjective):
    """The soft-prompt side of a projector LM for the training loop: the target tokens'
    cross-entropy, scored by the validation split's mean loss."""

    model: ProjectorLM

    def __init__(
        self,
        model: ProjectorLM,
        train_data: ProjectorDataset,
        val_data: ProjectorDataset | None,
        config: ProjectorTrainConfig,
    ) -> None:
        super().__init__(model, train_data, val_data, config)
        model.move(self.device)

    def parameter_groups(self) -> list[dict[str, Any]]:
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError("the projector has no trainable parameters")
        return decay_groups(self.model.parameters(), self.config.weight_decay)

    def materialize(self, batches: Sequence[Sequence[int]]) -> Iterable[ProjectorBatch]:
        return DataLoader(
            self.train_data,
            batch_sampler=[list(b) for b in batches],
            collate_fn=collate_projector,
            generator=torch.Generator(),  # its worker-seed draw leaves the global RNG be
        )

    def loss_weight(self, indices: Sequence[int]) -> float:
        """The loss averages over target tokens: each target and its end token."""
        return float(sum(len(self.train_data[i][1].target_ids) + 1 for i in indices))

    def loss(self, batch: ProjectorBatch) -> torch.Tensor:
        return batch_loss(self.model, batch, self.device)

    def validate(self) -> dict[str, Any] | None:
        if self.val_data is None or not len(self.val_data):
            return None
        return {"loss": mean_loss(self.model, self.val_data, self.device)}

    def weights(self) -> dict[str, torch.Tensor]:
        return soft_prompt_state(self.model)

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.prompt.load_state_dict(weights)


def fit(
    model: ProjectorLM,
    train_data: ProjectorDataset,
    val_data: ProjectorDataset | None,
    config: ProjectorTrainConfig,
    *,
    log_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Train the soft-prompt side of ``model`` in place through the training loop; it ends with
    the weights of the best validation loss. Returns one record per epoch."""
    if len(train_data) == 0:
        raise ConfigError("the training split is empty")
    settings = dataclasses.replace(config, log_dir=None if log_dir is None else str(log_dir))
    objective = ProjectorObjective(model, train_data, val_data, settings)
    return fit_loop(objective, settings, metric="loss").history


def mean_loss(model: ProjectorLM, data: ProjectorDataset, device: torch.device) -> float:
    """Sample-weighted mean loss over ``data`` (eval mode, no gradients)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=128, collate_fn=collate_projector):
            total += float(batch_loss(model, batch, device)) * len(batch.texts)
            count += len(batch.texts)
    return total / max(1, count)


def soft_prompt_state(model: ProjectorLM) -> dict[str, torch.Tensor]:
    """The trained tensors (the LM is not among them), detached CPU copies."""
    return cpu_state(model.prompt)


def train_projector(config: ProjectorConfig, out: str | Path | None = None) -> Path:
    """Run a whole projector training (see the module docstring); returns the model folder."""
    started = time.perf_counter()
    out = Path(out if out is not None else config.output)
    out.mkdir(parents=True, exist_ok=True)
    distributed.init_from_env()
    with distributed.main_first():  # rank 0 builds the data and fills the cache
        manifest_path = prepare_manifest(config)
        manifest = load_manifest(manifest_path)
        unknown = [c for c in config.columns if c not in manifest.schema.modalities]
        if unknown:
            raise ConfigError(f"encoders: {unknown} not modality column(s) of {manifest_path}")
        cache = encode_features(config, manifest_path)
    encoded_s = time.perf_counter() - started
    with torch_threads(config.train.threads):
        return _train_and_save(config, out, manifest_path, manifest, cache, started, encoded_s)


def _train_and_save(
    config: ProjectorConfig,
    out: Path,
    manifest_path: Path,
    manifest: Manifest,
    cache: FeatureCache,
    started: float,
    encoded_s: float,
) -> Path:
    lm = prepare_lm(config, manifest, out)
    dims = {c: cache.info(c).dim for c in config.columns}
    model = build_projector_lm(config, dims, lm)
    splits = _splits(manifest)
    sets = {s: ProjectorDataset(cache, manifest, config, lm, split=s) for s in splits}
    train_set = sets.get("train") or sets[None]
    history = fit(model, train_set, sets.get("val"), config.train, log_dir=out)
    trained_s = time.perf_counter() - started
    metrics: dict[str, Any] = {
        "train": {
            "epochs": len(history),
            "final_train_loss": history[-1]["train_loss"],
            "best_val_loss": min((r["val_loss"] for r in history if "val_loss" in r), default=None),
            "encode_seconds": round(encoded_s, 2),
            "seconds": round(trained_s, 2),
        },
        "data": {"manifest": str(manifest_path), **{str(k): len(v) for k, v in sets.items()}},
    }
    for split in EVAL_SPLITS:
        if split in sets and len(sets[split]):
            hyps = generate_texts(model, sets[split], max_tokens=config.max_tokens)
            metrics[split] = score_texts(config.task, hyps, sets[split].texts)
    if distributed.is_main():
        save_projector(out, model, config, dims, metrics)
    return out


def _splits(manifest: Manifest) -> list[str | None]:
    column = manifest.schema.split
    if column is None:
        return [None]
    found = {str(s.get(column)) for s in manifest.samples if s.get(column)}
    return [s for s in ("train", "val", "test") if s in found] or [None]


def save_projector(
    folder: Path,
    model: ProjectorLM,
    config: ProjectorConfig,
    dims: Mapping[str, int],
    metrics: Mapping[str, Any],
) -> None:
    """Write the model folder; a built-in LM inside it is referenced by its name there (the
    folder moves as a whole), one elsewhere by its absolute path."""
    lm_spec = model.lm.spec()
    if lm_spec["kind"] == "builtin" and lm_spec["path"]:
        lm_path = Path(lm_spec["path"]).resolve()
        inside = lm_path.parent == folder.resolve()
        lm_spec["path"] = lm_path.name if inside else str(lm_path)
    body = {"config": config.to_dict(), "dims": dict(dims), "lm": lm_spec}
    PROJECTOR_FOLDER.write(folder, soft_prompt_state(model), body, metrics)


def load_projector_lm(
    folder: str | Path, *, device: str = "cpu"
) -> tuple[ProjectorLM, ProjectorConfig]:
    """A projector folder → the model (eval mode, on ``device``) and its run config."""
    data = PROJECTOR_FOLDER.read_config(folder)
    config = ProjectorConfig.from_dict(data["config"])
    lm = load_frozen_lm(data["lm"], root=Path(folder))
    model = build_projector_lm(config, {c: int(d) for c, d in data["dims"].items()}, lm)
    PROJECTOR_FOLDER.load_weights(model.prompt, folder)
    return model.move(resolve_device(device)).eval(), config
