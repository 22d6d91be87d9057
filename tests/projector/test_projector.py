"""The projector route on synthetic features: token pooling, the projector, the built-in decoder,
the frozen-LM soft prompt (built-in and a tiny random-config Hugging Face LM), configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnifuse.config import recipes_dir
from omnifuse.errors import ConfigError
from omnifuse.nn import pool_in_runs
from omnifuse.projector import Projector, ProjectorLM, SoftPrompt
from omnifuse.projector.config import ProjectorConfig, read_projector_config
from omnifuse.projector.decoder import (
    DecoderConfig,
    DecoderLM,
    WordTokenizer,
    load_decoder,
    save_decoder,
)
from omnifuse.projector.lm import BuiltinLM, FrozenLM, HFCausalLM
from omnifuse.projector.pretrain import PretrainConfig, pretrain_decoder
from omnifuse.types import Encoded

INIT_RANGE = 0.3
"""Initial weight scale of the random Llama: large enough that its attention mixes positions
(at transformers' default 0.02 a random network passes almost nothing between positions)."""
TARGETS = ("a red circle", "two blue stars", "a small green square above a star", "yes")


# ----------------------------------------------------------------------------- pooling


def test_pool_in_runs_averages_equal_runs_of_real_tokens() -> None:
    tokens = torch.arange(6, dtype=torch.float32).view(1, 6, 1)  # 0..5
    mask = torch.tensor([[True, True, True, True, False, False]])
    pooled, pooled_mask = pool_in_runs(tokens, mask, 2)
    assert pooled.squeeze(-1).tolist() == [[0.5, 2.5]]  # runs (0, 1) and (2, 3); padding ignored
    assert pooled_mask.tolist() == [[True, True]]


def test_pool_in_runs_keeps_short_sequences_and_masks_the_rest() -> None:
    tokens = torch.tensor([[[4.0], [6.0], [0.0]]])
    pooled, mask = pool_in_runs(tokens, torch.tensor([[True, True, False]]), 3)
    assert mask.tolist() == [[True, True, False]]
    assert pooled.squeeze(-1).tolist() == [[4.0, 6.0, 0.0]]


def test_pool_in_runs_does_not_depend_on_batch_padding() -> None:
    torch.manual_seed(0)
    alone = torch.randn(1, 7, 3)
    padded = torch.cat([alone, torch.randn(1, 5, 3)], dim=1)
    other = torch.randn(1, 12, 3)
    batch = torch.cat([padded, other])
    mask = torch.tensor([[True] * 7 + [False] * 5, [True] * 12])
    one, _ = pool_in_runs(alone, torch.ones(1, 7, dtype=torch.bool), 3)
    both, _ = pool_in_runs(batch, mask, 3)
    torch.testing.assert_close(both[0], one[0])
    torch.testing.assert_close(both[1, 0], other[0, :4].mean(0))


# ----------------------------------------------------------------------------- projector


def test_projector_kinds_and_shapes() -> None:
    linear = Projector(10, 6, kind="linear")
    mlp = Projector(10, 6, kind="mlp2", hidden=16)
    x = torch.randn(2, 3, 10)
    assert linear(x).shape == mlp(x).shape == (2, 3, 6)
    assert sum(p.numel() for p in linear.parameters()) == 10 * 6 + 6
    assert sum(p.numel() for p in mlp.parameters()) == (10 * 16 + 16) + (16 * 6 + 6)
    with pytest.raises(ConfigError, match="linear"):
        Projector(10, 6, kind="mlp3")


def test_soft_prompt_layout_and_absent_columns() -> None:
    prompt = SoftPrompt({"image": 8, "audio": 4}, 12, tokens={"image": 2, "audio": 3})
    features = {
        "audio": Encoded(
            torch.randn(2, 9, 4), torch.ones(2, 9, dtype=torch.bool), torch.zeros(2, 4)
        ),
        "image": Encoded(
            torch.randn(2, 4, 8), torch.ones(2, 4, dtype=torch.bool), torch.zeros(2, 8)
        ),
    }
    present = torch.tensor([[True, True], [False, True]])  # columns sorted: audio, image
    vectors, mask = prompt(features, present)
    assert vectors.shape == (2, 5, 12)
    assert mask.tolist() == [[True] * 5, [False, False, False, True, True]]


def test_soft_prompt_with_a_token_fusion_and_a_pooled_one_rejected() -> None:
    fused = SoftPrompt(
        {"image": 8, "audio": 4},
        12,
        tokens={"image": 2, "audio": 3},
        fusion="transformer",
        fusion_cfg={"dim": 16, "layers": 1, "heads": 2},
    )
    features = {
        c: Encoded(torch.randn(2, 5, d), torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, d))
        for c, d in (("image", 8), ("audio", 4))
    }
    vectors, mask = fused(features, torch.ones(2, 2, dtype=torch.bool))
    assert vectors.shape[0] == 2 and vectors.shape[2] == 12 and mask.shape == vectors.shape[:2]
    with pytest.raises(ConfigError, match="does not produce tokens"):
        SoftPrompt({"image": 8}, 12, tokens={"image": 2}, fusion="concat")


# ----------------------------------------------------------------------------- decoder


def test_word_tokenizer_round_trip() -> None:
    tokenizer = WordTokenizer.build(["Is the red circle left of the star?", "yes"])
    ids = tokenizer.encode("is the red star?")
    assert tokenizer.decode(ids) == "is the red star?"
    assert tokenizer.encode("a purple circle")[:2] == [tokenizer.unk_id, tokenizer.unk_id]
    assert tokenizer.vocab[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert tokenizer.vocab[4] == "the"  # the most frequent word comes first
    with pytest.raises(ConfigError):
        WordTokenizer(["a", "b"])


def test_decoder_is_causal_and_skips_masked_positions() -> None:
    torch.manual_seed(0)
    model = DecoderLM(DecoderConfig(vocab_size=20, dim=16, layers=2, heads=2, dropout=0.0)).eval()
    x = torch.randn(1, 6, 16)
    mask = torch.tensor([[True, True, False, True, True, True]])
    base = model(x, mask)
    later = x.clone()
    later[0, 4:] += 5.0  # changing the future leaves the past alone
    torch.testing.assert_close(model(later, mask)[0, :4], base[0, :4])
    hidden = x.clone()
    hidden[0, 2] += 5.0  # a masked position is read by no later one
    torch.testing.assert_close(model(hidden, mask)[0, 3:], base[0, 3:])
    with pytest.raises(ConfigError, match="max_len"):
        model(torch.randn(1, 200, 16))


def test_pretrained_decoder_recites_and_round_trips(tmp_path: Path) -> None:
    result = pretrain_decoder(
        list(TARGETS) * 8,
        {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.0},
        PretrainConfig(epochs=30, batch_size=8, lr=5e-3),
        progress=False,
    )
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    save_decoder(tmp_path / "lm", result.model, result.tokenizer)
    model, tokenizer = load_decoder(tmp_path / "lm")
    ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode("two blue")]])
    for _ in range(2):
        next_id = model(model.embed(ids))[0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    assert tokenizer.decode(ids[0].tolist()) == "two blue stars"
    assert ids[0, -1].item() == tokenizer.eos_id
    with pytest.raises(ConfigError, match="not a decoder folder"):
        load_decoder(tmp_path)


# ----------------------------------------------------------------------------- soft prompt + LM


def synthetic_features(count: int, seed: int = 0) -> tuple[dict[str, Encoded], list[int]]:
    """One cluster of image-like tokens per target (the same clusters for every ``seed``, which
    draws the noise): sample i shows target ``i % len(TARGETS)``."""
    centres = torch.randn(len(TARGETS), 4, 24, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(seed)
    labels = [i % len(TARGETS) for i in range(count)]
    tokens = centres[labels] + 0.1 * torch.randn(count, 4, 24, generator=generator)
    mask = torch.ones(count, 4, dtype=torch.bool)
    return {"image": Encoded(tokens, mask, tokens.mean(1))}, labels


def train_steps(model: ProjectorLM, steps: int, lr: float = 3e-3) -> list[float]:
    """Full-batch AdamW steps on the synthetic task; the loss of every step."""
    features, labels = synthetic_features(16)
    present = torch.ones(16, 1, dtype=torch.bool)
    targets = [model.lm.token_ids(TARGETS[i]) for i in labels]
    optimizer = torch.optim.AdamW(model.prompt.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model.loss(features, present, [[] for _ in labels], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.fixture(scope="module")
def builtin_lm() -> BuiltinLM:
    """A decoder that learnt each target after its key word (``k2 a small green square…``):
    it reads one position of context, which the soft prompt will stand in for."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pretrain_decoder(
            [f"k{i} {t}" for i, t in enumerate(TARGETS)] * 8,
            {"dim": 32, "layers": 2, "heads": 2, "dropout": 0.0},
            PretrainConfig(epochs=40, batch_size=8, lr=5e-3),
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    return BuiltinLM(result.model, result.tokenizer)


def lm_snapshot(lm: FrozenLM) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in lm.module.state_dict().items()}


def test_builtin_route_learns_to_describe_and_keeps_the_lm_frozen(builtin_lm: BuiltinLM) -> None:
    lm = builtin_lm
    torch.manual_seed(0)
    model = ProjectorLM(lm, SoftPrompt({"image": 24}, lm.embed_dim, tokens={"image": 1}))
    before = lm_snapshot(lm)
    assert all(not p.requires_grad for p in lm.module.parameters())
    assert not any(k.startswith("lm.") for k in model.state_dict())
    losses = train_steps(model, 40, lr=1e-2)
    assert losses[-1] < 0.1 * losses[0]
    for key, value in lm_snapshot(lm).items():
        torch.testing.assert_close(value, before[key])
    assert not lm.module.training  # train() on the projector does not reach the frozen LM
    features, labels = synthetic_features(8, seed=1)  # new samples of the same clusters
    ids = model.generate(features, torch.ones(8, 1, dtype=torch.bool), [[] for _ in labels])
    assert [lm.decode(row) for row in ids] == [TARGETS[i] for i in labels]


def test_loss_counts_target_tokens_only(builtin_lm: BuiltinLM) -> None:
    lm = builtin_lm
    torch.manual_seed(0)
    model = ProjectorLM(lm, SoftPrompt({"image": 24}, lm.embed_dim, tokens={"image": 2})).eval()
    features, _ = synthetic_features(1)
    present = torch.ones(1, 1, dtype=torch.bool)
    target = lm.token_ids("a red circle")
    prompt = lm.token_ids("yes")
    loss = model.loss(features, present, [prompt], [target])
    soft, _ = model.prompt(features, present)
    ids = torch.tensor([[*prompt, *target, lm.eos_id]])
    embeds = torch.cat([lm.embed(torch.tensor([[lm.bos_id]])), soft, lm.embed(ids)], dim=1)
    logits = lm.logits(embeds, torch.ones(embeds.shape[:2], dtype=torch.bool))[0]
    first = 1 + 2 + len(prompt)  # bos, two soft tokens, the prompt
    expected = torch.nn.functional.cross_entropy(
        logits[first - 1 : first - 1 + len(target) + 1], torch.tensor([*target, lm.eos_id])
    )
    torch.testing.assert_close(loss, expected)


def tiny_hf_folder(folder: Path) -> Path:
    """A randomly initialised 2-layer Llama (never trained) and a word-level tokenizer built
    offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tiny_hf import tiny_llama

    words = sorted({w for t in TARGETS for w in t.split()})
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "<pad>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    model = tiny_llama(tokenizer, hidden=32, context=64, initializer_range=INIT_RANGE)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_tiny_random_hf_lm_through_the_projector_loss_goes_down(tmp_path: Path) -> None:
    lm = HFCausalLM(tiny_hf_folder(tmp_path / "hf"))
    assert (lm.embed_dim, lm.bos_id, lm.eos_id) == (32, 1, 2)
    assert lm.decode(lm.token_ids("two blue stars")) == "two blue stars"
    torch.manual_seed(0)
    model = ProjectorLM(lm, SoftPrompt({"image": 24}, lm.embed_dim, tokens={"image": 4}))
    before = lm_snapshot(lm)
    losses = train_steps(model, 60, lr=1e-2)
    assert losses[-1] < 0.2 * losses[0]
    for key, value in lm_snapshot(lm).items():
        torch.testing.assert_close(value, before[key])
    features, labels = synthetic_features(8, seed=1)
    ids = model.generate(features, torch.ones(8, 1, dtype=torch.bool), [[] for _ in labels])
    assert [lm.decode(row) for row in ids] == [TARGETS[i] for i in labels]


def test_hf_lm_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        HFCausalLM(tmp_path / "absent")
    with pytest.raises(ConfigError, match="cannot load"):
        HFCausalLM(tmp_path)


# ----------------------------------------------------------------------------- config


def minimal_config(**changes: object) -> dict[str, object]:
    config: dict[str, object] = {
        "task": "caption",
        "data": {"dataset": "world", "size": 4},
        "encoders": {"image": "effnet-lite0"},
        "target": "caption",
        "output": "runs/x",
    }
    config.update(changes)
    return config


def test_config_defaults_and_round_trip() -> None:
    config = ProjectorConfig.from_dict(minimal_config())
    assert config.columns == ("image",)
    assert config.projector.tokens == {"image": 8}
    assert config.lm.kind == "builtin" and config.train.epochs == 20
    again = ProjectorConfig.from_dict(config.to_dict())
    assert again == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "translate"}, "task"),
        ({"colour": 1}, "colour"),
        ({"lm": {"kind": "gguf"}}, "lm.kind"),
        ({"lm": {"kind": "hf"}}, "lm.path"),
        ({"lm": {"size": {"width": 3}}}, "lm.size.width"),
        ({"lm": {"size": {"vocab_size": 3}}}, "vocab_size"),
        ({"projector": {"kind": "mlp9"}}, "projector.kind"),
        ({"projector": {"tokens": {"audio": 2}}}, "projector.tokens.audio"),
        ({"projector": {"tokens": {"image": 0}}}, "projector.tokens.image"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"lr": -1}}, "train.lr"),
        ({"encoders": {}}, "encoders"),
        ({"prompt": "{question"}, "prompt"),
        ({"prompt": {"question": None}}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_config_errors_name_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProjectorConfig.from_dict(minimal_config(**change))


@pytest.mark.parametrize("name", ["world-caption.yaml", "world-vqa-gen.yaml"])
def test_shipped_projector_configs_parse(name: str) -> None:
    config = read_projector_config(recipes_dir() / name)
    assert config.data.dataset == "world" and config.lm.kind == "builtin"
    assert set(config.projector.tokens) == set(config.columns)
