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

import contextlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from omnifuse.data.cache import FeatureCache
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.schema import write_json_atomic
from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.projector.config import ProjectorConfig, ProjectorTrainConfig
from omnifuse.projector.data import (
    ProjectorBatch,
    ProjectorDataset,
    collate_projector,
    encode_features,
    lm_corpus,
    prepare_manifest,
)
from omnifuse.projector.decoder import DecoderConfig, pretrain_decoder, save_decoder
from omnifuse.projector.evaluate import generate_texts, score_texts
from omnifuse.projector.lm import BuiltinLM, FrozenLM, load_frozen_lm
from omnifuse.projector.model import ProjectorLM, SoftPrompt
from omnifuse.train.config import TrainingError
from omnifuse.train.log import MetricsLog
from omnifuse.train.schedule import warmup_cosine
from omnifuse.train.trainer import seed_everything

FORMAT = "omnifuse-projector"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
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
    folder = save_decoder(out / LM_DIR, result.model, result.tokenizer, metrics)
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


def fit(
    model: ProjectorLM,
    train_data: ProjectorDataset,
    val_data: ProjectorDataset | None,
    config: ProjectorTrainConfig,
    *,
    log_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Train the soft-prompt side of ``model`` in place; it ends with the weights of the best
    validation loss (the last epoch's without validation data). Returns one record per epoch."""
    if len(train_data) == 0:
        raise ConfigError("the training split is empty")
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model.move(device)
    optimizer = _optimizer(model, config)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total)
    log = MetricsLog(log_dir)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bad_epochs, step = 0, 0
    try:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            batches = DataLoader(
                train_data,
                batch_size=config.batch_size,
                shuffle=True,
                collate_fn=collate_projector,
                generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch),
            )
            if config.progress:
                batches = track(batches, f"epoch {epoch + 1}/{config.epochs}")  # type: ignore[assignment]
            model.train()
            running = torch.zeros((), device=device)
            for batch in batches:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * warmup_cosine(step, total, warmup)
                loss = batch_loss(model, batch, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                running += loss.detach()
                step += 1
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": float(running) / steps_per_epoch,
            }
            if not math.isfinite(record["train_loss"]):
                raise TrainingError(f"training diverged in epoch {epoch + 1}")
            score = record["train_loss"]
            if val_data is not None and len(val_data):
                score = record["val_loss"] = mean_loss(model, val_data, device)
            record["seconds"] = round(time.perf_counter() - started, 3)
            history.append(record)
            log.write(record)
            if best is None or score < best[0]:
                best, bad_epochs = (score, soft_prompt_state(model)), 0
            else:
                bad_epochs += 1
            if config.patience is not None and bad_epochs >= config.patience:
                break
    finally:
        log.close()
    if best is not None and val_data is not None and len(val_data):
        model.prompt.load_state_dict(best[1])
    return history


def _optimizer(model: ProjectorLM, config: ProjectorTrainConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the projector has no trainable parameters")
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.lr,
    )


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
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.prompt.state_dict().items()}


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_projector(config: ProjectorConfig, out: str | Path | None = None) -> Path:
    """Run a whole projector training (see the module docstring); returns the model folder."""
    started = time.perf_counter()
    out = Path(out if out is not None else config.output)
    out.mkdir(parents=True, exist_ok=True)
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
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(soft_prompt_state(model), str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS_FILE)
    lm_spec = model.lm.spec()
    if lm_spec["kind"] == "builtin" and lm_spec["path"]:
        lm_path = Path(lm_spec["path"]).resolve()
        inside = lm_path.parent == folder.resolve()
        lm_spec["path"] = lm_path.name if inside else str(lm_path)
    write_json_atomic(
        folder / CONFIG_FILE,
        {
            "format": FORMAT,
            "version": VERSION,
            "config": config.to_dict(),
            "dims": dict(dims),
            "lm": lm_spec,
        },
    )
    write_json_atomic(folder / METRICS_FILE, dict(metrics))


def load_projector_lm(
    folder: str | Path, *, device: str = "cpu"
) -> tuple[ProjectorLM, ProjectorConfig]:
    """A projector folder → the model (eval mode, on ``device``) and its run config."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} is not a projector folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an omnifuse projector (format tag missing)")
    if data.get("version") != VERSION:
        raise ConfigError(f"{path}: unsupported version {data.get('version')!r}")
    config = ProjectorConfig.from_dict(data["config"])
    lm = load_frozen_lm(data["lm"], root=folder)
    model = build_projector_lm(config, {c: int(d) for c, d in data["dims"].items()}, lm)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, SafetensorError) as err:
        raise ConfigError(f"{folder / WEIGHTS_FILE}: cannot read the weights ({err})") from None
    try:
        model.prompt.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"{folder}: weights do not fit the projector config ({err})") from None
    return model.move(resolve_device(device)).eval(), config
