"""InfoNCE against a straightforward reference, duplicate-aware targets, hard negatives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from omnifuse.align.loss import MAX_LOGIT_SCALE, LogitScale, info_nce


def reference_info_nce(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """Symmetric InfoNCE written out with Python loops: −log softmax of each row's diagonal."""
    n = a.shape[0]
    sims = [[scale * float(a[i] @ b[j]) for j in range(n)] for i in range(n)]
    a_to_b = 0.0
    b_to_a = 0.0
    for i in range(n):
        a_to_b -= sims[i][i] - math.log(sum(math.exp(sims[i][j]) for j in range(n)))
        b_to_a -= sims[i][i] - math.log(sum(math.exp(sims[j][i]) for j in range(n)))
    return (a_to_b / n + b_to_a / n) / 2


def _pair(seed: int, n: int = 6, dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1)
    b = F.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1)
    return a, b


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 14.285714), (2, 100.0)])
def test_matches_the_loop_reference(seed: int, scale: float) -> None:
    a, b = _pair(seed)
    loss = info_nce(a, b, scale)
    assert float(loss) == pytest.approx(reference_info_nce(a, b, scale), rel=1e-10)


def test_matches_open_clip_formulation() -> None:
    a, b = _pair(3, n=9)
    logits = 20.0 * a @ b.T
    labels = torch.arange(9)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert float(info_nce(a, b, torch.tensor(20.0, dtype=torch.float64))) == pytest.approx(
        float(expected), rel=1e-12
    )


def test_fixed_input_value() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each row: -log(e^s / (e^s + e^0)) = log(1 + e^-s)
    assert float(info_nce(a, b, 2.0)) == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)


def test_distinct_groups_equal_plain_clip() -> None:
    a, b = _pair(4)
    plain = info_nce(a, b, 10.0)
    grouped = info_nce(a, b, 10.0, groups=torch.arange(6) * 7)
    assert float(grouped) == pytest.approx(float(plain), rel=1e-12)


def test_same_group_items_are_pulled_together_not_apart() -> None:
    # items 0 and 1 share a group (say, one caption spoken by two voices) on both sides
    x, x2, y = torch.eye(3, dtype=torch.float64)
    together = torch.stack([x, x, y])
    apart = torch.stack([x, x2, y])
    groups = torch.tensor([0, 0, 1])
    # plain CLIP rewards separating them (a false negative); group targets reward merging them
    assert float(info_nce(apart, apart, 30.0)) < float(info_nce(together, together, 30.0))
    assert float(info_nce(together, together, 30.0, groups=groups)) < float(
        info_nce(apart, apart, 30.0, groups=groups)
    )
    # merged, the loss sits at its floor: the entropy of the two-way target of the group's rows
    floor = 2 * math.log(2) / 3
    assert float(info_nce(together, together, 30.0, groups=groups)) == pytest.approx(
        floor, abs=1e-9
    )


def test_exact_duplicates_on_one_side_equal_the_plain_loss() -> None:
    # identical captions embed identically: their columns cannot be told apart, so the group
    # targets and the plain targets give the same loss
    gen = torch.Generator().manual_seed(7)
    text = F.normalize(torch.randn(5, 4, generator=gen, dtype=torch.float64), dim=1)
    text[1] = text[0]
    image = F.normalize(torch.randn(5, 4, generator=gen, dtype=torch.float64), dim=1)
    groups = torch.tensor([0, 0, 1, 2, 3])
    assert float(info_nce(text, image, 9.0, groups=groups)) == pytest.approx(
        float(info_nce(text, image, 9.0)), rel=1e-12
    )


def test_hard_negative_weights_raise_the_loss_of_close_negatives() -> None:
    a, b = _pair(5, n=8)
    assert float(info_nce(a, b, 10.0, hard_beta=0.0)) == pytest.approx(float(info_nce(a, b, 10.0)))
    easy = float(info_nce(a, b, 10.0))
    hard = float(info_nce(a, b, 10.0, hard_beta=5.0))
    assert hard > easy


def test_gradients_flow_to_both_sides_and_the_scale() -> None:
    a, b = _pair(6)
    a.requires_grad_(True)
    b.requires_grad_(True)
    scale = LogitScale()
    info_nce(a, b, scale()).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert b.grad is not None and b.grad.abs().sum() > 0
    assert scale.log_scale.grad is not None


def test_logit_scale_init_and_clamp() -> None:
    scale = LogitScale(0.07)
    assert float(scale().detach()) == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    assert float(scale().detach()) == MAX_LOGIT_SCALE
    assert not LogitScale(learnable=False).log_scale.requires_grad


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="paired"):
        info_nce(torch.zeros(3, 2), torch.zeros(4, 2), 1.0)
    with pytest.raises(ValueError, match="groups"):
        info_nce(torch.eye(3), torch.eye(3), 1.0, groups=torch.arange(2))
