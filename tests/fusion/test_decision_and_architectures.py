"""Decision-level and hybrid fusions; serial, hierarchical and mixed architectures."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fusion import create_fusion
from omnifuse.fusion.base import Fusion, FusionOutput
from omnifuse.fusion.late import (
    HybridFusion,
    LateFusion,
    LateStackingFusion,
    LateWeightedFusion,
    modality_cross_entropy,
)
from omnifuse.fusion.serial import FiLM
from omnifuse.types import Encoded

DECISION = ("late-mean", "late-weighted", "late-stacking", "hybrid")
FEATURE = ("serial-film", "serial-xattn", "hierarchical", "mixed")
DIMS = {"audio": 6, "image": 5, "text": 7}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids oversubscription on shared CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_features(dims: Mapping[str, int], batch: int, seed: int = 0) -> dict[str, Encoded]:
    """Random tokens of a different length per modality, the last sample's last token padding."""
    gen = torch.Generator().manual_seed(seed)
    features = {}
    for i, (m, d) in enumerate(sorted(dims.items())):
        tokens = torch.randn(batch, 3 + i, d, generator=gen)
        mask = torch.ones(batch, 3 + i, dtype=torch.bool)
        mask[-1, -1] = False
        pooled = (tokens * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        features[m] = Encoded(tokens, mask, pooled)
    return features


def build(name: str, dims: Mapping[str, int] = DIMS, **cfg: object) -> Fusion:
    torch.manual_seed(0)
    if name in DECISION:
        cfg.setdefault("num_classes", 4)
    return create_fusion(name, dims, dim=16, dropout=0.0, **cfg)


def presence(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


# ---------------------------------------------------------------- decision-level combiners


FIXED_LOGITS = torch.tensor(
    [
        [[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 3.0, 0.0]],
        [[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 5.0]],
        [[1.0, 1.0, 1.0, 1.0], [9.0, 0.0, 0.0, 0.0], [0.0, 9.0, 0.0, 0.0]],
    ]
)  # (B=3, M=3, C=4)
FIXED_PRESENT = presence([[1, 1, 1], [1, 0, 1], [0, 0, 0]])


def test_late_mean_is_the_mean_of_present_log_probabilities() -> None:
    fusion = build("late-mean")
    assert isinstance(fusion, LateFusion)
    logits, weights = fusion.combine(FIXED_LOGITS, FIXED_PRESENT)
    lp = torch.log_softmax(FIXED_LOGITS, dim=-1)
    torch.testing.assert_close(logits[0], lp[0].mean(0))
    torch.testing.assert_close(logits[1], (lp[1, 0] + lp[1, 2]) / 2)
    torch.testing.assert_close(logits[2], fusion.prior.detach())
    assert weights is not None
    torch.testing.assert_close(weights, torch.tensor([[1 / 3] * 3, [0.5, 0.0, 0.5], [0.0] * 3]))


def test_late_weighted_renormalises_learned_weights_over_present_modalities() -> None:
    fusion = build("late-weighted")
    assert isinstance(fusion, LateWeightedFusion)
    with torch.no_grad():
        fusion.weight_scores.copy_(torch.tensor([0.0, math.log(2.0), math.log(3.0)]))
    logits, weights = fusion.combine(FIXED_LOGITS, FIXED_PRESENT)
    assert weights is not None
    torch.testing.assert_close(
        weights, torch.tensor([[1 / 6, 2 / 6, 3 / 6], [1 / 4, 0.0, 3 / 4], [0.0, 0.0, 0.0]])
    )
    lp = torch.log_softmax(FIXED_LOGITS, dim=-1)
    torch.testing.assert_close(logits[0], lp[0, 0] / 6 + lp[0, 1] * 2 / 6 + lp[0, 2] * 3 / 6)
    torch.testing.assert_close(logits[1], lp[1, 0] / 4 + lp[1, 2] * 3 / 4)
    torch.testing.assert_close(logits[2], fusion.prior.detach())


def test_late_stacking_sees_zeroed_probabilities_and_presence_bits() -> None:
    fusion = build("late-stacking")
    assert isinstance(fusion, LateStackingFusion)
    seen: list[torch.Tensor] = []
    fusion.stacker[0].register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    logits, weights = fusion.combine(FIXED_LOGITS, FIXED_PRESENT)
    assert weights is None
    probs = torch.softmax(FIXED_LOGITS, dim=-1)
    expected = torch.stack(
        [
            torch.cat([probs[0].flatten(), torch.ones(3)]),
            torch.cat([probs[1, 0], torch.zeros(4), probs[1, 2], torch.tensor([1.0, 0.0, 1.0])]),
            torch.zeros(15),
        ]
    )
    torch.testing.assert_close(seen[0], expected)
    torch.testing.assert_close(logits[:2], fusion.stacker(expected[:2]))
    torch.testing.assert_close(logits[2], fusion.prior.detach())


@pytest.mark.parametrize("name", ["late-mean", "late-weighted"])
def test_one_present_modality_gives_that_heads_prediction(name: str) -> None:
    fusion = build(name).eval()
    features = make_features(DIMS, 3)
    out = fusion(features, presence([[0, 1, 0], [1, 0, 0], [0, 0, 1]]))
    assert out.modality_logits is not None and out.logits is not None
    for row, m in enumerate(["image", "audio", "text"]):
        head = torch.softmax(out.modality_logits[m][row], dim=-1)
        torch.testing.assert_close(torch.softmax(out.logits[row], dim=-1), head)


@pytest.mark.parametrize("name", ["late-mean", "late-weighted", "late-stacking"])
def test_no_present_modality_gives_the_learned_prior(name: str) -> None:
    fusion = build(name).eval()
    assert isinstance(fusion, LateFusion)
    out = fusion(make_features(DIMS, 2), presence([[0, 0, 0], [1, 1, 1]]))
    assert out.logits is not None
    torch.testing.assert_close(out.logits[0], fusion.prior.detach())
    assert not torch.allclose(out.logits[1], fusion.prior.detach())
    nothing = fusion({}, presence([[0, 0, 0]]))
    torch.testing.assert_close(nothing.fused[0], fusion.prior.detach())


@pytest.mark.parametrize("name", DECISION)
def test_decision_outputs_logits_and_per_modality_heads(name: str) -> None:
    fusion = build(name).eval()
    assert fusion.kind == "decision"
    features = make_features(DIMS, 4)
    out = fusion(features, presence([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]]))
    assert out.logits is not None and out.logits.shape == (4, 4)
    assert torch.equal(out.fused, out.logits)
    assert out.modality_logits is not None
    assert sorted(out.modality_logits) == sorted(DIMS)
    assert all(v.shape == (4, 4) for v in out.modality_logits.values())


@pytest.mark.parametrize("name", DECISION)
def test_modality_missing_from_batch_equals_absent_per_sample(name: str) -> None:
    fusion = build(name).eval()
    features = make_features(DIMS, 3)
    present = presence([[1, 0, 1], [0, 0, 1], [1, 0, 0]])
    full = fusion(features, present)
    without = fusion({m: f for m, f in features.items() if m != "image"}, present)
    torch.testing.assert_close(full.fused, without.fused)
    assert without.modality_logits is not None and "image" not in without.modality_logits


def test_hybrid_mean_is_the_mean_of_both_parts_log_probabilities() -> None:
    fusion = build("hybrid", combine="mean", feature="gated", decision="late-weighted").eval()
    assert isinstance(fusion, HybridFusion)
    features = make_features(DIMS, 4)
    present = presence([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]])
    out = fusion(features, present)
    feature_part = fusion.feature(features, present)
    decision_part = fusion.decision(features, present)
    assert feature_part.weights is not None and decision_part.weights is not None
    assert decision_part.logits is not None
    feature_lp = torch.log_softmax(fusion.classifier(feature_part.fused), dim=-1)
    decision_lp = torch.log_softmax(decision_part.logits, dim=-1)
    torch.testing.assert_close(out.fused, (feature_lp + decision_lp) / 2)
    torch.testing.assert_close(out.weights, (feature_part.weights + decision_part.weights) / 2)


def test_hybrid_gate_mixes_between_its_parts() -> None:
    fusion = build("hybrid").eval()
    assert isinstance(fusion, HybridFusion) and fusion.gate is not None
    features = make_features(DIMS, 4)
    present = presence([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]])
    with torch.no_grad():
        fusion.gate.weight.zero_()
        fusion.gate.bias.fill_(math.log(3.0))  # σ = 0.75
    out = fusion(features, present)
    decision_logits = fusion.decision(features, present).logits
    assert decision_logits is not None
    feature_lp = torch.log_softmax(fusion.classifier(fusion.feature(features, present).fused), -1)
    decision_lp = torch.log_softmax(decision_logits, dim=-1)
    torch.testing.assert_close(out.fused, 0.75 * feature_lp + 0.25 * decision_lp)


def test_hybrid_rejects_parts_of_the_wrong_kind() -> None:
    with pytest.raises(ConfigError, match="feature-level"):
        build("hybrid", feature="late-mean")
    with pytest.raises(ConfigError, match="decision-level"):
        build("hybrid", decision="concat")
    with pytest.raises(ConfigError, match="combine"):
        build("hybrid", combine="max")


def test_modality_cross_entropy_averages_over_present_pairs() -> None:
    a = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1, 0])
    present = presence([[1, 1], [1, 0], [0, 0]])
    out = FusionOutput(fused=torch.zeros(3, 2), modality_logits={"a": a, "b": b})
    loss = modality_cross_entropy(out, present, ["a", "b"], targets)
    ce_a = F.cross_entropy(a, targets, reduction="none")
    ce_b = F.cross_entropy(b, targets, reduction="none")
    torch.testing.assert_close(loss, (ce_a[0] + ce_a[1] + ce_b[0]) / 3)


# ---------------------------------------------------------------- serial chains


def test_film_with_unit_gamma_and_zero_beta_is_the_identity() -> None:
    film = FiLM(cond_dim=3, dim=5)
    with torch.no_grad():
        film.to_gamma_beta.weight.zero_()
        film.to_gamma_beta.bias.zero_()
    x, cond = torch.randn(2, 4, 5), torch.randn(2, 3)
    torch.testing.assert_close(film(x, cond), x)
    with torch.no_grad():
        film.to_gamma_beta.bias.copy_(torch.cat([torch.ones(5), torch.full((5,), 0.5)]))
    torch.testing.assert_close(film(x, cond), 2 * x + 0.5)


def copy_into(small: nn.Module, big: nn.Module) -> None:
    """Load the parameters ``small`` shares with ``big`` (same names) from ``big``."""
    own = small.state_dict()
    small.load_state_dict({k: v for k, v in big.state_dict().items() if k in own}, strict=True)


@pytest.mark.parametrize("name", ["serial-film", "serial-xattn"])
@pytest.mark.parametrize("skipped", ["audio", "image", "text"])
def test_an_absent_modality_is_skipped_in_the_chain(name: str, skipped: str) -> None:
    order = ["audio", "image", "text"]
    chain = build(name, order=order).eval()
    rest = [m for m in order if m != skipped]
    shorter = build(name, {m: DIMS[m] for m in rest}, order=rest).eval()
    copy_into(shorter, chain)
    features = make_features(DIMS, 4)
    column = order.index(skipped)
    present = torch.ones(4, 3, dtype=torch.bool)
    present[1::2, column] = False  # samples 1 and 3 lack the skipped modality
    present[3, (column + 1) % 3] = False  # sample 3 lacks another one too
    out = chain(features, present).fused
    rest_features = {m: features[m] for m in rest}
    expected = shorter(rest_features, present[:, [order.index(m) for m in rest]]).fused
    torch.testing.assert_close(out[1::2], expected[1::2], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out[0::2], expected[0::2], atol=1e-3)


def test_serial_order_is_configurable_and_checked() -> None:
    features = make_features(DIMS, 3)
    present = torch.ones(3, 3, dtype=torch.bool)
    forward = build("serial-film", order=["audio", "image", "text"]).eval()
    backward = build("serial-film", order=["text", "image", "audio"]).eval()
    backward.load_state_dict(forward.state_dict())
    assert not torch.allclose(forward(features, present).fused, backward(features, present).fused)
    with pytest.raises(ConfigError, match="order"):
        build("serial-film", order=["audio", "text"])


@pytest.mark.parametrize("name", ["serial-film", "serial-xattn"])
def test_long_sequences_are_average_pooled_to_max_tokens(name: str) -> None:
    dims = {"a": 3, "b": 4}
    fusion = build(name, dims, max_tokens=2).eval()
    features = make_features(dims, 2, seed=3)
    long_a = torch.randn(2, 4, 3)
    features["a"] = Encoded(long_a, torch.ones(2, 4, dtype=torch.bool), long_a.mean(1))
    pairs = long_a.view(2, 2, 2, 3).mean(2)  # tokens (0, 1) and (2, 3) averaged
    pooled = dict(features, a=Encoded(pairs, torch.ones(2, 2, dtype=torch.bool), pairs.mean(1)))
    present = torch.ones(2, 2, dtype=torch.bool)
    torch.testing.assert_close(fusion(features, present).fused, fusion(pooled, present).fused)


# ---------------------------------------------------------------- every fusion of this module


SUBSETS = [[a, i, t] for a in (0, 1) for i in (0, 1) for t in (0, 1)]


@pytest.mark.parametrize("name", DECISION + FEATURE)
def test_every_missing_subset_gives_finite_rows_equal_to_the_sample_alone(name: str) -> None:
    fusion = build(name).eval()
    features = make_features(DIMS, len(SUBSETS), seed=1)
    present = presence(SUBSETS)
    out = fusion(features, present).fused
    assert out.shape == (8, 4 if name in DECISION else 16)
    assert torch.isfinite(out).all()
    for row in (0, 3, 6):
        alone = {m: Encoded(*(x[row : row + 1] for x in f)) for m, f in features.items()}
        torch.testing.assert_close(fusion(alone, present[row : row + 1]).fused[0], out[row])


@pytest.mark.parametrize("name", FEATURE)
def test_feature_architectures_pass_gradients_to_every_parameter(name: str) -> None:
    fusion = build(name).train()
    out = fusion(make_features(DIMS, 8, seed=2), presence(SUBSETS))
    (out.fused * torch.randn_like(out.fused)).sum().backward()
    silent = [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.any()]
    assert silent == []
    assert fusion.kind == "feature" and fusion.uses_tokens


def test_hierarchical_combines_token_and_vector_levels() -> None:
    for combine in ("gate", "concat"):
        fusion = build("hierarchical", combine=combine).eval()
        out = fusion(make_features(DIMS, 2), presence([[1, 0, 1], [0, 0, 0]]))
        assert out.fused.shape == (2, 16)
        assert out.tokens is not None and out.token_mask is not None
        assert out.tokens.shape[:2] == out.token_mask.shape
        # the absent image is one "missing" token per sample; absent audio's tokens are masked
        assert out.token_mask[1].sum() == 3
    with pytest.raises(ConfigError, match="combine"):
        build("hierarchical", combine="sum")


def test_mixed_passes_on_the_parallel_branch_weights() -> None:
    fusion = build("mixed").eval()
    out = fusion(make_features(DIMS, 3), presence([[1, 1, 1], [0, 1, 1], [0, 0, 0]]))
    assert out.weights is not None
    torch.testing.assert_close(out.weights.sum(1), torch.tensor([1.0, 1.0, 0.0]))
    assert (out.weights[1, 0] == 0).item()


# ---------------------------------------------------------------- learning a task needing both


def two_modality_task(size: int, seed: int) -> tuple[dict[str, Encoded], torch.Tensor]:
    """Four classes ``y = 2u + v``: modality ``a`` shows ``u`` and ``b`` shows ``v`` (a class
    pattern on noisy tokens), so either modality alone is right half of the time at best."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(2, 2, 8, generator=gen.manual_seed(99))
    gen.manual_seed(seed)
    u = torch.randint(0, 2, (size,), generator=gen)
    v = torch.randint(0, 2, (size,), generator=gen)
    features = {}
    for m, bit in (("a", u), ("b", v)):
        idx = 0 if m == "a" else 1
        tokens = patterns[idx, bit].unsqueeze(1) + 0.7 * torch.randn(size, 3, 8, generator=gen)
        mask = torch.ones(size, 3, dtype=torch.bool)
        features[m] = Encoded(tokens, mask, tokens.mean(1))
    return features, 2 * u + v


@pytest.mark.parametrize("name", DECISION + FEATURE)
def test_learns_a_task_that_needs_both_modalities(name: str) -> None:
    torch.manual_seed(0)
    dims = {"a": 8, "b": 8}
    cfg = {"num_classes": 4} if name in DECISION else {}
    fusion = create_fusion(name, dims, dim=16, dropout=0.0, **cfg)
    head = nn.Identity() if fusion.kind == "decision" else nn.Linear(16, 4)
    model = nn.ModuleList([fusion, head])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    features, labels = two_modality_task(128, seed=0)
    present = torch.ones(128, 2, dtype=torch.bool)
    for _ in range(80):
        loss = F.cross_entropy(head(fusion(features, present).fused), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test_features, test_labels = two_modality_task(512, seed=1)
    with torch.no_grad():
        logits = head(fusion(test_features, torch.ones(512, 2, dtype=torch.bool)).fused)
    assert (logits.argmax(1) == test_labels).float().mean() > 0.9


def test_late_mean_with_one_modality_keeps_the_evidence_it_has() -> None:
    """Trained with both modalities, late-mean given only ``a`` puts its mass on the two
    classes that agree with ``u``, because each head learned its own modality's half."""
    torch.manual_seed(0)
    fusion = create_fusion("late-mean", {"a": 8, "b": 8}, num_classes=4, dim=16, dropout=0.0)
    optimizer = torch.optim.Adam(fusion.parameters(), lr=1e-2)
    features, labels = two_modality_task(128, seed=0)
    present = torch.ones(128, 2, dtype=torch.bool)
    for _ in range(80):
        loss = F.cross_entropy(fusion(features, present).fused, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_features, test_labels = two_modality_task(512, seed=1)
    only_a = torch.tensor([[True, False]]).expand(512, 2)
    with torch.no_grad():
        probs = torch.softmax(fusion(test_features, only_a).fused, dim=-1)  # (N, 4)
    u = test_labels // 2
    mass_on_u = probs.view(512, 2, 2).sum(-1).gather(1, u.unsqueeze(1)).squeeze(1)
    assert mass_on_u.mean() > 0.9
