"""Training mechanics on synthetic features: stages, frozen anchors, locked heads, batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from omnifuse.align.batches import nearest_neighbours, neighbour_batches, random_batches
from omnifuse.align.config import AlignTrain
from omnifuse.align.data import ColumnFeatures, SplitData
from omnifuse.align.heads import HeadSpec, ProjectionHead
from omnifuse.align.model import AlignedModel, ModalitySpec, scale_key
from omnifuse.align.train import Stage, fit_stage, validation_score
from omnifuse.nn import stride_pool

DIM_IN = {"t": 12, "i": 20, "a": 8}


def _split(count: int, seed: int) -> SplitData:
    """Three views of the same latent code: 't', 'i' and 'a' are noisy random maps of it."""
    gen = torch.Generator().manual_seed(seed)
    maps = torch.Generator().manual_seed(99)
    latent = torch.randn(count, 6, generator=gen)
    features = {}
    for column, dim in DIM_IN.items():
        weight = torch.randn(6, dim, generator=maps)
        noise = 0.1 * torch.randn(count, dim, generator=gen)
        features[column] = ColumnFeatures(latent @ weight + noise)
    names = [f"r{i}" for i in range(count)]
    return SplitData(names, torch.arange(count), names, [{} for _ in names], features)


def _model(locked: tuple[str, ...] = ()) -> AlignedModel:
    torch.manual_seed(0)
    kinds = {"t": "text", "i": "image", "a": "audio"}
    specs = {
        kinds[c]: ModalitySpec(
            c,
            {"name": "unused"},
            HeadSpec(input_dim=dim, dim=16, hidden=32, dropout=0.0, locked=c in locked),
        )
        for c, dim in DIM_IN.items()
    }
    return AlignedModel(specs, [scale_key("t", "i"), scale_key("a", "t")])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def _fit(model: AlignedModel, stage: Stage, tmp_path: Path, **train: Any) -> Any:
    settings = AlignTrain(**{"batch_size": 32, "lr": 0.01, "patience": 50, **train})
    return fit_stage(model, stage, _split(160, 1), _split(40, 2), settings, tmp_path, [])


def test_pairs_stage_learns_both_heads_and_the_temperature(tmp_path: Path) -> None:
    model = _model()
    stage = Stage("pairs", [("t", "i")], ["t", "i"], epochs=15, lr=0.01)
    before = {m: _state(model.heads[m]) for m in ("text", "image", "audio")}
    scale = model.logit_scale("t|i")
    chance = validation_score(model, stage, _split(40, 2))
    result = _fit(model, stage, tmp_path)
    assert result.best_score > 0.8 > 2 * chance
    assert _changed(before["text"], model.heads["text"])
    assert _changed(before["image"], model.heads["image"])
    assert not _changed(before["audio"], model.heads["audio"])
    assert model.logit_scale("t|i") != pytest.approx(scale)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == result.epochs


def test_binding_keeps_the_anchor_frozen(tmp_path: Path) -> None:
    model = _model()
    _fit(model, Stage("pairs", [("t", "i")], ["t", "i"], epochs=10, lr=0.01), tmp_path)
    anchor = {m: _state(model.heads[m]) for m in ("text", "image")}
    bound = _state(model.heads["audio"])
    bind = Stage("bind:a", [("a", "t")], ["a"], epochs=10, lr=0.01)
    result = _fit(model, bind, tmp_path)
    assert result.best_score > 0.8
    assert not _changed(anchor["text"], model.heads["text"])
    assert not _changed(anchor["image"], model.heads["image"])
    assert _changed(bound, model.heads["audio"])
    # audio never met images, yet retrieves them through the text anchor
    emergent = Stage("probe", [("a", "i")], [], epochs=1, lr=0.01)
    assert validation_score(model, emergent, _split(40, 2)) > 0.5


def test_locked_head_keeps_its_weights_and_eval_mode(tmp_path: Path) -> None:
    model = _model(locked=("t",))
    before = _state(model.heads["text"])
    model.train()
    assert not model.heads["text"].training
    _fit(model, Stage("pairs", [("t", "i")], ["i"], epochs=3, lr=0.01), tmp_path)
    assert not _changed(before, model.heads["text"])


@pytest.mark.parametrize("kind", ["in-batch", "neighbours"])
def test_hard_negative_modes_train(tmp_path: Path, kind: str) -> None:
    model = _model()
    stage = Stage("pairs", [("t", "i")], ["t", "i"], epochs=8, lr=0.01)
    result = _fit(model, stage, tmp_path, hard_negatives=kind, hard_beta=2.0, neighbours=4)
    assert result.best_score > 0.6


def test_batches_partition_every_epoch() -> None:
    rng = np.random.default_rng(0)
    batches = random_batches(33, 8, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(33))
    assert [len(b) for b in batches] == [8, 8, 8, 9]  # no batch of one
    features = torch.randn(50, 5)
    neighbours = nearest_neighbours(features, 6)
    batches = neighbour_batches(neighbours, 10, 4, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))


def test_nearest_neighbours_match_brute_force() -> None:
    features = torch.randn(30, 4)
    unit = torch.nn.functional.normalize(features, dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2.0)
    expected = sims.argsort(dim=1, descending=True)[:, :3].numpy()
    np.testing.assert_array_equal(nearest_neighbours(features, 3, chunk=7), expected)


def test_neighbour_batches_group_close_items() -> None:
    # four tight clusters of eight: clusters of four neighbours stay within their cluster
    centres = torch.eye(4) * 10
    features = centres.repeat_interleave(8, dim=0) + 0.01 * torch.randn(32, 4)
    neighbours = nearest_neighbours(features, 8)
    batches = neighbour_batches(neighbours, 4, 4, np.random.default_rng(1))
    pure = sum(len({int(i) // 8 for i in b}) == 1 for b in batches)
    assert pure >= 6


def test_attention_head_ignores_padding() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(
        HeadSpec(input_dim=6, dim=4, pool="attention", queries=2, dropout=0.0)
    ).eval()
    tokens = torch.randn(2, 5, 6)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    garbage = tokens.clone()
    garbage[0, 3:] = 1e3
    with torch.no_grad():
        out = head(torch.zeros(2, 6), tokens, mask)
        again = head(torch.zeros(2, 6), garbage, mask)
        alone = head(torch.zeros(1, 6), tokens[:1, :3], mask[:1, :3])
    torch.testing.assert_close(out, again)
    torch.testing.assert_close(out[:1], alone)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_stride_pool_averages_real_tokens_only() -> None:
    tokens = torch.arange(10, dtype=torch.float32).view(1, 5, 2).repeat(2, 1, 1)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled, pooled_mask = stride_pool(tokens, mask, 2)
    assert pooled_mask.tolist() == [[True, True, True], [True, True, False]]
    torch.testing.assert_close(pooled[0], torch.tensor([[1.0, 2.0], [5.0, 6.0], [8.0, 9.0]]))
    torch.testing.assert_close(pooled[1, :2], torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
