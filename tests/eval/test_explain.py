"""Explanations: exact Shapley values (hand-computed games, efficiency), ablation, weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from evalkit import OracleModel, TinyModel, make_batches, oracle_batches

from omnifuse.eval.explain import (
    ablation,
    coalition_values,
    modality_shapley,
    modality_weights,
    shapley_values,
)
from omnifuse.eval.inference import predict, prepare_batches


def coalitions(players: list[str]) -> list[frozenset[str]]:
    sizes = range(len(players) + 1)
    return [frozenset(c) for size in sizes for c in itertools.combinations(players, size)]


def test_two_player_game_by_hand() -> None:
    # φ_a = ½(10 − 0) + ½(50 − 20) = 20, φ_b = ½(20 − 0) + ½(50 − 10) = 30
    values = {frozenset(): 0.0, frozenset("a"): 10.0, frozenset("b"): 20.0, frozenset("ab"): 50.0}
    assert shapley_values(values, ["a", "b"]) == pytest.approx({"a": 20.0, "b": 30.0})


def test_three_player_glove_game_by_hand() -> None:
    # A left glove L and two right gloves: a pair is worth 1. L is pivotal in 4 of 6 orders.
    players = ["L", "R1", "R2"]
    values = {c: float("L" in c and len(c) >= 2) for c in coalitions(players)}
    assert shapley_values(values, players) == pytest.approx({"L": 2 / 3, "R1": 1 / 6, "R2": 1 / 6})


def test_efficiency_symmetry_and_null_player_on_a_random_game() -> None:
    players = ["a", "b", "c", "d"]
    g = torch.Generator().manual_seed(1)
    base = {c: float(torch.rand(1, generator=g)) for c in coalitions(players[:3])}
    # d is a null player: adding it never changes the value
    values = {c: base[c - {"d"}] for c in coalitions(players)}
    phi = shapley_values(values, players)
    full = frozenset(players)
    assert sum(phi.values()) == pytest.approx(values[full] - values[frozenset()], abs=1e-12)
    assert phi["d"] == pytest.approx(0.0, abs=1e-12)
    # a symmetric pair gets equal values
    sym = {c: float(len(c & {"a", "b"})) + 0.3 * ("c" in c) for c in coalitions(players[:3])}
    phi_sym = shapley_values(sym, players[:3])
    assert phi_sym["a"] == pytest.approx(phi_sym["b"]) == pytest.approx(1.0)
    assert phi_sym["c"] == pytest.approx(0.3)


def test_missing_coalition_is_an_error() -> None:
    with pytest.raises(ValueError, match="missing"):
        shapley_values({frozenset(): 0.0, frozenset("a"): 1.0}, ["a", "b"])


def test_oracle_model_values_in_closed_form() -> None:
    batches = oracle_batches(classes=4)
    model = OracleModel(scale=4.0)
    p_true = math.exp(4.0) / (math.exp(4.0) + 3)
    values = coalition_values(model, batches)
    assert len(values) == 4
    assert values[frozenset()] == pytest.approx(0.25)
    assert values[frozenset({"b"})] == pytest.approx(0.25)
    assert values[frozenset({"a"})] == pytest.approx(p_true)
    result = modality_shapley(model, batches)
    assert result.values == pytest.approx({"a": p_true - 0.25, "b": 0.0})
    assert result.efficiency_gap() == pytest.approx(0.0, abs=1e-9)
    accuracy = modality_shapley(model, batches, value="accuracy").values
    labels = torch.cat([b.labels for b in batches if b.labels is not None])
    chance = float((labels == 0).float().mean())  # zero logits predict class 0
    assert accuracy["a"] == pytest.approx(1.0 - chance) and accuracy["b"] == pytest.approx(0.0)


def test_ablation_of_the_oracle() -> None:
    batches = oracle_batches(classes=4)
    labels = torch.cat([b.labels for b in batches if b.labels is not None])
    by_modality = {a.modality: a for a in ablation(OracleModel(4.0), batches)}
    p_true = math.exp(4.0) / (math.exp(4.0) + 3)
    chance = float((labels == 0).float().mean())
    assert by_modality["a"].delta_accuracy == pytest.approx(1.0 - chance)
    assert by_modality["a"].delta_true_class_probability == pytest.approx(p_true - 0.25)
    assert by_modality["b"].delta_accuracy == 0.0
    assert by_modality["b"].delta_true_class_probability == pytest.approx(0.0, abs=1e-7)


def test_weights_are_averaged_over_present_samples() -> None:
    assert modality_weights(OracleModel(), oracle_batches()) == {"a": 1.0, "b": 0.0}
    torch.manual_seed(0)
    dims = {"x": 6, "y": 5, "z": 4}
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (30,), generator=g)
    feats = {m: torch.randn(30, d, generator=g) for m, d in dims.items()}
    batches = make_batches(labels, feats)
    attention = modality_weights(TinyModel("attention", dims, 3), batches)
    assert set(attention) == set(dims) and sum(attention.values()) == pytest.approx(1.0, abs=1e-5)
    assert modality_weights(TinyModel("concat", dims, 3), batches) == {}


@pytest.mark.parametrize("fusion", ["concat", "attention", "low-rank-tensor"])
def test_exact_shapley_of_a_real_fusion_is_efficient(fusion: str) -> None:
    torch.manual_seed(0)
    dims = {"x": 6, "y": 5, "z": 4}
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 3, (24,), generator=g)
    batches = make_batches(labels, {m: torch.randn(24, d, generator=g) for m, d in dims.items()})
    model = TinyModel(fusion, dims, 3)
    result = modality_shapley(model, batches)
    assert len(result.coalitions) == 2**3
    assert result.efficiency_gap() == pytest.approx(0.0, abs=1e-9)
    full = predict(model, prepare_batches(batches))
    assert result.coalitions[frozenset(dims)] == pytest.approx(full.true_class_probability())
