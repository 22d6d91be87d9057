"""File helpers shared by every part that writes results or reads a saved model.

- Atomic writes (:func:`replace_atomic`, :func:`write_atomic` and its bytes, text and JSON
  forms): a file is written to a temporary sibling and renamed over its target, so readers and
  crashes see the old file or the whole new one, never a part. ``durable=True`` also makes the
  new file survive a power cut: its bytes are fsynced before the rename and the folder entry
  after it (:func:`fsync_dir`).
- Saved-model folders (:class:`FolderFormat`): ``config.json`` tagged with a format name and a
  version, the weights as safetensors (never pickle) and ``metrics.json``; every reading error is
  a :class:`~omnifuse.errors.ConfigError` of the folder kind's own type, naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from omnifuse.errors import ConfigError


def fsync_dir(path: Path) -> None:
    """Persist the entries of folder ``path`` (new, renamed or removed files). A no-op where
    folders cannot be opened or their file system does not sync them."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def replace_atomic(
    path: Path,
    write_to: Callable[[Path], object],
    *,
    durable: bool = False,
    sync_dir: bool = True,
) -> None:
    """Write ``path`` by calling ``write_to`` with a fresh temporary sibling path (nothing is
    there yet: for writers that create their file themselves, such as safetensors) that is then
    renamed over it; the folder is created if needed. With ``durable`` the file is fsynced
    before the rename and, unless ``sync_dir`` is False (a caller renaming several files syncs
    the folder once), the folder after it. Temporary names are unique, so concurrent writers
    never share one, and look like ``.<name>.<random>.tmp``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # the unique name is reserved; the writer creates the file
        write_to(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        if durable:
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


def write_atomic(path: Path, write: Callable[[BinaryIO], object], **options: bool) -> None:
    """:func:`replace_atomic` (the same ``durable`` and ``sync_dir`` options) for a writer of an
    open binary file."""

    def write_to(tmp: Path) -> None:
        with tmp.open("wb") as f:
            write(f)

    replace_atomic(path, write_to, **options)


def write_bytes_atomic(path: Path, data: bytes, **options: bool) -> None:
    write_atomic(path, lambda f: f.write(data), **options)


def write_text_atomic(path: Path, text: str, **options: bool) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), **options)


def write_json_atomic(path: Path, data: Any, **options: bool) -> None:
    """``data`` as indented UTF-8 JSON with a final newline."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", **options)


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A folder to fill in place of ``out``: ``out.partial``, which replaces ``out`` when the
    block ends normally and is removed when it raises, so ``out`` is never half written."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON: arrays and tensors become lists, non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_ready(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cpu_state(
    module: nn.Module, keep: Callable[[str], bool] | None = None
) -> dict[str, torch.Tensor]:
    """A module's state (the entries whose key ``keep`` accepts, default all) as contiguous CPU
    tensors of their own, ready for safetensors and untouched by later training steps."""
    return {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in module.state_dict().items()
        if keep is None or keep(key)
    }


@dataclass(frozen=True)
class FolderFormat:
    """One kind of saved folder: its file names, the format tag and version in its config, and
    the error type (a :class:`ConfigError`) that reports a folder that cannot be loaded.

    ``name`` is how messages call the kind ("model", "aligned model"); ``version`` None writes
    version 1 but accepts any on reading (kinds that never checked it).
    """

    tag: str
    name: str
    error: type[ConfigError] = ConfigError
    version: int | None = 1
    config_file: str = "config.json"
    weights_file: str = "model.safetensors"
    metrics_file: str = "metrics.json"

    @property
    def _a_name(self) -> str:
        return ("an " if self.name[0] in "aeiou" else "a ") + self.name

    def write(
        self,
        folder: str | Path,
        state: Mapping[str, torch.Tensor],
        config: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the folder (created if needed; each file replaced atomically): the weights,
        ``config`` under the format tag and version, and ``metrics`` when given."""
        from safetensors.torch import save_file

        folder = Path(folder)
        metadata = {"format": self.tag}
        replace_atomic(
            folder / self.weights_file, lambda tmp: save_file(dict(state), tmp, metadata=metadata)
        )
        header = {"format": self.tag, "version": self.version or 1}
        write_json_atomic(folder / self.config_file, {**header, **config})
        if metrics is not None:
            write_json_atomic(folder / self.metrics_file, json_ready(dict(metrics)))
        return folder

    def read_config(self, folder: str | Path) -> dict[str, Any]:
        """The folder's config, checked for its format tag and version."""
        path = Path(folder) / self.config_file
        if not path.is_file():
            raise self.error(f"{folder} is not {self._a_name} folder (no {self.config_file})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self.error(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != self.tag:
            found = data.get("format") if isinstance(data, dict) else None
            raise self.error(
                f"{path}: not {self._a_name} folder (format {found!r}, expected {self.tag!r})"
            )
        if self.version is not None and data.get("version") != self.version:
            raise self.error(f"{path}: unsupported version {data.get('version')!r}")
        return data

    def read_weights(self, folder: str | Path) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(folder) / self.weights_file
        if not path.is_file():
            raise self.error(f"{folder} has no {self.weights_file}")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise self.error(f"{path}: unreadable weights ({err})") from None

    def load_weights(
        self, module: nn.Module, folder: str | Path, *, keys: Collection[str] | None = None
    ) -> None:
        """Read the folder's weights into ``module``. ``keys`` names the entries the folder must
        hold when it saves only part of the module's state (the rest stays as built)."""
        state = self.read_weights(folder)
        path = Path(folder) / self.weights_file
        if keys is not None:
            missing = sorted(set(keys) - set(state))
            unexpected = sorted(set(state) - set(keys))
            if missing or unexpected:
                raise self.error(
                    f"{path}: weights do not fit the config (missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]})"
                )
        try:
            module.load_state_dict(state, strict=keys is None)
        except RuntimeError as err:
            raise self.error(f"{path}: weights do not fit the config ({err})") from None

    def read_metrics(self, folder: str | Path) -> dict[str, Any]:
        """The folder's metrics; empty when it has none."""
        path = Path(folder) / self.metrics_file
        return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}
