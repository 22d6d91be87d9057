"""Resumable training checkpoints: safetensors for tensors, JSON for everything else, no pickle.

After every epoch the training loop writes ``checkpoint_dir/epoch-NNNN/`` with

- ``state.safetensors``: the trained weights (``model.*``), optimizer tensors
  (``optimizer.<i>.<k>``), the random generators' states (``rng.*``);
- ``best.safetensors``: the weights of the best epoch so far (for early stopping);
- ``state.json``: epoch, step, history, best metric and epoch, epochs without improvement,
  optimizer settings and scalars, Python and NumPy generator scalars, and the settings the run
  was started with,

then points ``latest.json`` at that folder (written atomically) and removes older epochs, so an
interruption at any moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from omnifuse.fileio import write_json_atomic
from omnifuse.train.config import TrainingError

FORMAT = "omnifuse-checkpoint"
LATEST = "latest.json"


@dataclass
class TrainingState:
    """Progress of a run: epochs and steps completed, per-epoch history, early-stopping state."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0


def save_checkpoint(
    folder: str | Path,
    *,
    weights: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    best_weights: dict[str, torch.Tensor] | None,
    settings: dict[str, Any],
) -> Path:
    """Write the checkpoint of the epoch just completed; returns its folder."""
    root = Path(folder)
    name = f"epoch-{state.epoch:04d}"
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    tensors = {f"model.{k}": v for k, v in weights.items()}
    optim_tensors, optim_json = _optimizer_parts(optimizer)
    rng_tensors, rng_json = capture_rng()
    save_file({**tensors, **optim_tensors, **rng_tensors}, str(target / "state.safetensors"))
    if best_weights is not None:
        save_file(best_weights, str(target / "best.safetensors"))
    write_json_atomic(
        target / "state.json",
        {
            "format": FORMAT,
            "state": asdict(state),
            "optimizer": optim_json,
            "rng": rng_json,
            "settings": settings,
        },
    )
    write_json_atomic(root / LATEST, {"format": FORMAT, "folder": name})
    for old in root.glob("epoch-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target


def has_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / LATEST).is_file()


@dataclass
class Checkpoint:
    """A restored checkpoint: the progress, the weights of its last and of its best epoch."""

    state: TrainingState
    weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor] | None


def load_checkpoint(
    folder: str | Path,
    *,
    optimizer: torch.optim.Optimizer,
    settings: dict[str, Any],
) -> Checkpoint:
    """Restore the optimizer and the random generators; return the progress and the weights.

    ``settings`` must equal those the checkpoint was written with (except keys that do not change
    results), or :class:`TrainingError` lists the differences.
    """
    import json

    root = Path(folder)
    latest = json.loads((root / LATEST).read_text(encoding="utf-8"))
    target = root / str(latest["folder"])
    meta = json.loads((target / "state.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise TrainingError(f"{target} is not an omnifuse training checkpoint")
    differences = _differences(meta["settings"], settings)
    if differences:
        raise TrainingError(
            f"cannot resume from {target}: settings differ ({'; '.join(differences)})"
        )
    tensors = load_file(str(target / "state.safetensors"))
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizer.load_state_dict(_optimizer_state(tensors, meta["optimizer"]))
    restore_rng(tensors, meta["rng"])
    best_path = target / "best.safetensors"
    best = load_file(str(best_path)) if best_path.is_file() else None
    return Checkpoint(TrainingState(**meta["state"]), weights, best)


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def _optimizer_parts(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, Any] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                values[f"{index}.{key}"] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in state["param_groups"]
    ]
    return tensors, {"param_groups": groups, "values": values}


def _optimizer_state(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = defaultdict(dict)
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state[int(index)][key] = value
    for name, value in saved["values"].items():
        index, key = name.split(".", 1)
        state[int(index)][key] = value
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in saved["param_groups"]
    ]
    return {"state": dict(state), "param_groups": groups}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """States of the torch (CPU and CUDA), NumPy and Python global generators."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = cuda_state
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, python_state, gauss = random.getstate()
    return tensors, {
        "numpy": [name, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(python_state), gauss],
    }


def restore_rng(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    name, pos, has_gauss, cached = saved["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, cached))
    version, python_state, gauss = saved["python"]
    random.setstate((version, tuple(python_state), gauss))
