"""Text encoders: minilm, hf-text (tiny random models in tmp_path), gru-text, transformer-text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, T5Config, T5Model

from omnifuse.encoders import create, describe, list_encoders
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.tokenizer import ByteTokenizer, create_tokenizer, minilm_model_dir
from omnifuse.errors import ConfigError, EmptyInputError, InputError, TextEncodingError
from omnifuse.types import Encoded

TEXTS = [
    "A cat.",
    "A man is playing a guitar on the stage while the crowd sings along.",
    "Red square, blue circle.",
    "Tokenisation of uncommon words like photosynthesis and antidisestablishmentarianism.",
]
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
TRAINABLE = [
    ("gru-text", {"dim": 32}),
    ("gru-text", {"dim": 32, "layers": 2, "bidirectional": False, "dropout": 0.1}),
    ("transformer-text", {"dim": 32, "heads": 4, "layers": 2}),
    ("transformer-text", {"dim": 32, "heads": 2, "layers": 1, "tokenizer": "bytes"}),
]
TRAINABLE_IDS = ["gru-bi", "gru-uni-2layer", "transformer", "transformer-bytes"]


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return create("minilm")


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(minilm_model_dir(), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer: Any) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's WordPiece tokenizer, saved to disk."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(minilm_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
    )
    BertModel(config).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


def token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(tokenizer(text)["input_ids"]) for text in texts]


def assert_contract(out: Encoded, dim: int, counts: list[int]) -> None:
    """Shapes, dtypes, the mask's real-token counts and finiteness."""
    assert out.tokens.shape == (len(counts), max(counts), dim)
    assert out.pooled.shape == (len(counts), dim)
    assert out.mask.dtype == torch.bool and out.tokens.dtype == torch.float32
    assert out.mask.sum(dim=1).tolist() == counts
    for row, count in zip(out.mask, counts, strict=True):
        assert row[:count].all() and not row[count:].any()  # right padding
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()


def assert_batched_equals_single(encoder: Encoder, texts: list[str], atol: float = 1e-5) -> None:
    batched = encoder.encode(texts, batch_size=3)
    for i, text in enumerate(texts):
        single = encoder.encode([text])
        count = int(single.mask.sum())
        torch.testing.assert_close(batched.pooled[i], single.pooled[0], atol=atol, rtol=0)
        torch.testing.assert_close(
            batched.tokens[i, :count], single.tokens[0, :count], atol=atol * 10, rtol=0
        )


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


# --- minilm -------------------------------------------------------------------------------------


def test_text_encoders_are_registered() -> None:
    names = set(list_encoders())
    assert {"minilm", "hf-text", "gru-text", "transformer-text"} <= names
    assert "MiniLM" in describe("minilm")


def test_minilm_contract(minilm: Encoder, minilm_tokenizer: Any) -> None:
    assert (minilm.modality, minilm.dim, minilm.trainable) == ("text", 384, False)
    assert not any(p.requires_grad for p in minilm.parameters())
    out = minilm.encode(TEXTS)
    assert_contract(out, 384, token_counts(minilm_tokenizer, TEXTS))
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(len(TEXTS)))
    assert not out.pooled.requires_grad


def test_minilm_batched_equals_one_by_one(minilm: Encoder) -> None:
    assert_batched_equals_single(minilm, TEXTS)


def test_minilm_fast_path_equals_preprocess_collate(minilm: Encoder) -> None:
    """The one-call tokenisation of encode() gives exactly the per-item path's ids and outputs."""
    batch = minilm.collate([minilm.preprocess(text) for text in TEXTS])
    assert batch["input_ids"].dim() == 2 and batch["input_ids"][0, -1] == 0  # [PAD] id
    with torch.no_grad():
        slow = minilm.run_batch(batch)
    fast = minilm.encode(TEXTS)
    assert torch.equal(slow.mask, fast.mask)
    torch.testing.assert_close(slow.pooled, fast.pooled, atol=0, rtol=0)
    item = minilm.preprocess(TEXTS[0])
    assert item["input_ids"].dim() == 1 and item["attention_mask"].tolist() == [1] * 5


def test_minilm_equals_sentence_transformers_mean_pooling(
    minilm: Encoder, minilm_tokenizer: Any
) -> None:
    """Pooled = masked mean of the raw HF model's last hidden state, L2-normalised."""
    model = AutoModel.from_pretrained(minilm_model_dir(), local_files_only=True).eval()
    inputs = minilm_tokenizer(
        TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**inputs)[0]
    weights = inputs["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    expected = torch.nn.functional.normalize(mean, p=2, dim=1)
    out = minilm.encode(TEXTS)
    torch.testing.assert_close(out.pooled, expected, atol=1e-5, rtol=0)
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(out.tokens[real], hidden[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("anchor", "paraphrase", "unrelated"),
    [
        ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."),
        ("The cat sleeps on the sofa.", "A kitten is napping on the couch.", "Rain is expected."),
        ("How do I bake bread?", "What is a recipe for making bread?", "The train left late."),
    ],
)
def test_minilm_ranks_paraphrase_above_unrelated(
    minilm: Encoder, anchor: str, paraphrase: str, unrelated: str
) -> None:
    pooled = minilm.encode([anchor, paraphrase, unrelated]).pooled
    close, far = cosine(pooled[0], pooled[1]), cosine(pooled[0], pooled[2])
    assert close > 0.5 and close - far > 0.4


def test_minilm_bf16_close_to_fp32(minilm: Encoder) -> None:
    bf16 = create("minilm", dtype="bf16")
    assert next(bf16.parameters()).dtype == torch.bfloat16
    out = bf16.encode(TEXTS)
    assert out.pooled.dtype == torch.float32 and out.tokens.dtype == torch.float32
    assert (cosine(out.pooled, minilm.encode(TEXTS).pooled) >= 0.99).all()


def test_minilm_truncates_to_max_length(minilm: Encoder) -> None:
    long_text = " ".join(["word"] * 600)
    assert minilm.encode([long_text]).mask.sum() == 256
    short = create("minilm", max_length=8)
    out = short.encode([long_text, "hi"])
    assert out.mask.sum(dim=1).tolist() == [8, 3]


def test_minilm_reads_bytes_and_files(minilm: Encoder, tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text("Café au lait, s'il vous plaît.", encoding="utf-8")
    from_text = minilm.encode(["Café au lait, s'il vous plaît."]).pooled
    from_mixed = minilm.encode([path, path.read_bytes()]).pooled
    torch.testing.assert_close(from_mixed, from_text.expand(2, -1), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("", EmptyInputError),
        (" \n\t ", EmptyInputError),
        (b"", EmptyInputError),
        (b"caf\xe9 \xff\xfe", TextEncodingError),
        ("lone \ud800 surrogate", TextEncodingError),
    ],
)
@pytest.mark.parametrize("name", ["minilm", "gru-text"])
def test_bad_text_raises_typed_error(
    minilm: Encoder, name: str, raw: str | bytes, error: type[InputError]
) -> None:
    encoder = minilm if name == "minilm" else create(name, dim=16)
    with pytest.raises(error) as caught:
        encoder.preprocess(raw)
    assert caught.value.modality == "text"
    with pytest.raises(error):
        encoder.encode(["a fine sentence", raw])


# --- hf-text ------------------------------------------------------------------------------------


def test_hf_text_tiny_bert_by_path(tiny_bert: Path, minilm_tokenizer: Any) -> None:
    encoder = create("hf-text", model=str(tiny_bert))
    assert (encoder.dim, encoder.trainable, encoder.max_length) == (32, False, 512)
    out = encoder.encode(TEXTS)
    assert_contract(out, 32, token_counts(minilm_tokenizer, TEXTS))
    torch.testing.assert_close(
        out.pooled, (out.tokens * out.mask.unsqueeze(-1)).sum(1) / out.mask.sum(1, keepdim=True)
    )
    assert_batched_equals_single(encoder, TEXTS)


def test_hf_text_pooling_modes(tiny_bert: Path) -> None:
    mean = create("hf-text", model=tiny_bert).encode(TEXTS)
    cls = create("hf-text", model=tiny_bert, pooling="cls", normalize=True).encode(TEXTS)
    last = create("hf-text", model=tiny_bert, pooling="last").encode(TEXTS)
    torch.testing.assert_close(cls.tokens, mean.tokens)
    torch.testing.assert_close(cls.pooled, torch.nn.functional.normalize(mean.tokens[:, 0], dim=-1))
    ends = mean.mask.sum(dim=1) - 1
    torch.testing.assert_close(last.pooled, mean.tokens[torch.arange(len(TEXTS)), ends])


def test_hf_text_finetune_all_reaches_every_parameter(tiny_bert: Path) -> None:
    encoder = create("hf-text", model=tiny_bert, finetune="all")
    assert encoder.trainable and encoder.training
    params = dict(encoder.named_parameters())
    assert params and all(p.requires_grad for p in params.values())
    out = encoder.encode(TEXTS[:2])
    assert out.pooled.requires_grad
    weights = torch.randn(out.pooled.shape, generator=torch.Generator().manual_seed(0))
    (out.pooled * weights).sum().backward()
    missing = [name for name, p in params.items() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_hf_text_finetune_last_trains_only_the_last_layer(tiny_bert: Path) -> None:
    encoder = create("hf-text", model=tiny_bert, finetune="last")
    trained = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith("model.encoder.layer.1.") for name in trained)
    out = encoder.encode(TEXTS[:2])
    out.pooled.pow(2).sum().backward()
    assert all(p.grad is not None for n, p in encoder.named_parameters() if n in trained)
    assert all(p.grad is None for n, p in encoder.named_parameters() if n not in trained)


def test_hf_text_encoder_decoder_uses_its_encoder(tmp_path: Path, minilm_tokenizer: Any) -> None:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(minilm_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=2
    )
    T5Model(config).save_pretrained(tmp_path)
    minilm_tokenizer.save_pretrained(tmp_path)
    encoder = create("hf-text", model=tmp_path)
    out = encoder.encode(TEXTS)
    assert_contract(out, 32, token_counts(minilm_tokenizer, TEXTS))
    assert_batched_equals_single(encoder, TEXTS)


def test_hf_text_rejects_missing_model_and_bad_options(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        create("hf-text", model=tmp_path / "absent")
    with pytest.raises(ConfigError, match="pooling"):
        create("hf-text", model=tiny_bert, pooling="max")
    with pytest.raises(ConfigError, match="finetune"):
        create("hf-text", model=tiny_bert, finetune="some")
    with pytest.raises(ConfigError, match="max_length"):
        create("hf-text", model=tiny_bert, max_length=4096)


# --- trainable ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cfg"), TRAINABLE, ids=TRAINABLE_IDS)
def test_trainable_contract(name: str, cfg: dict[str, Any]) -> None:
    torch.manual_seed(0)
    encoder = create(name, **cfg)
    assert (encoder.modality, encoder.dim, encoder.trainable) == ("text", 32, True)
    tokenizer = create_tokenizer(cfg.get("tokenizer", "wordpiece"))
    counts = [len(ids) for ids in tokenizer.encode_batch(TEXTS)]
    encoder.eval()
    out = encoder.encode(TEXTS)
    assert_contract(out, 32, counts)
    assert not out.tokens[~out.mask].any()  # padding positions are zero
    torch.testing.assert_close(
        out.pooled, out.tokens.sum(1) / out.mask.sum(1, keepdim=True), atol=1e-6, rtol=0
    )
    assert_batched_equals_single(encoder, TEXTS)


@pytest.mark.parametrize(("name", "cfg"), TRAINABLE, ids=TRAINABLE_IDS)
def test_trainable_gradients_reach_every_parameter(name: str, cfg: dict[str, Any]) -> None:
    torch.manual_seed(0)
    encoder = create(name, **cfg)
    out = encoder.encode(TEXTS)
    assert out.pooled.requires_grad
    weights = torch.randn(out.pooled.shape)
    ((out.pooled * weights).sum() + out.tokens.pow(2).mean()).backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("name", ["gru-text", "transformer-text"])
def test_trainable_learns_to_separate_two_topics(name: str) -> None:
    """Training only the encoder, under a fixed random linear head, fits a two-topic task."""
    torch.manual_seed(0)
    texts = [
        "the dog barks loudly",
        "a puppy chases the ball",
        "my dog likes long walks",
        "the hound sleeps outside",
        "stocks fell on monday",
        "the market rallied again",
        "bond yields rose sharply",
        "investors sold their shares",
    ]
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    encoder = create(name, dim=32, dropout=0.0)
    head = torch.nn.Linear(32, 2).requires_grad_(False)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(encoder.encode(texts).pooled), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    encoder.eval()
    with torch.no_grad():
        predicted = head(encoder.encode(texts).pooled).argmax(dim=1)
    assert losses[0] > 0.5 and losses[-1] < losses[0] / 5
    assert torch.equal(predicted, labels)


@pytest.mark.parametrize("name", ["gru-text", "transformer-text"])
def test_trainable_bf16_autocast_and_truncation(name: str) -> None:
    torch.manual_seed(0)
    fp32 = create(name, dim=32, max_length=12).eval()
    bf16 = create(name, dim=32, max_length=12, dtype="bf16").eval()
    bf16.load_state_dict(fp32.state_dict())
    reference, out = fp32.encode(TEXTS), bf16.encode(TEXTS)
    assert out.mask.sum(dim=1).max() == 12 and torch.equal(out.mask, reference.mask)
    assert out.pooled.dtype == torch.float32
    assert (cosine(out.pooled, reference.pooled) > 0.98).all()


def test_tokenizers() -> None:
    assert ByteTokenizer().encode_batch(["hé"]) == [[ord("h") + 1, 0xC3 + 1, 0xA9 + 1]]
    wordpiece = create_tokenizer("wordpiece")
    minilm_ids = AutoTokenizer.from_pretrained(minilm_model_dir(), local_files_only=True)(
        "Photosynthesis works."
    )["input_ids"]
    assert wordpiece.encode_batch(["Photosynthesis works."]) == [minilm_ids[1:-1]]
    assert (wordpiece.vocab_size, wordpiece.pad_id) == (30522, 0)
    with pytest.raises(ConfigError):
        create_tokenizer("sentencepiece")


def test_trainable_rejects_bad_config() -> None:
    with pytest.raises(ConfigError, match="even"):
        create("gru-text", dim=33)
    with pytest.raises(ConfigError, match="divisible"):
        create("transformer-text", dim=30, heads=4)
