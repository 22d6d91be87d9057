"""The ``grid`` pooling of a projection head: tokens kept in their place, so moving what is in
an image moves the embedding (attention pooling of the same tokens barely notices)."""

from __future__ import annotations

import pytest
import torch

from omnifuse.align.heads import GridPool, HeadConfig, HeadSpec, ProjectionHead
from omnifuse.errors import ConfigError


def spec(**changes: object) -> HeadSpec:
    base: dict[str, object] = {
        "input_dim": 8,
        "dim": 6,
        "hidden": 16,
        "pool": "grid",
        "max_tokens": 4,
        "cell": 3,
        "dropout": 0.0,
    }
    return HeadSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_grid_keeps_each_token_in_its_place() -> None:
    torch.manual_seed(0)
    pool = GridPool(spec())
    tokens = torch.randn(2, 4, 8)
    mask = torch.ones(2, 4, dtype=torch.bool)
    out = pool(tokens, mask)
    assert out.shape == (2, 4 * 3 + 8) and pool.out_dim == 20
    swapped = pool(tokens[:, [1, 0, 2, 3]], mask)
    assert torch.allclose(out[:, :3], swapped[:, 3:6]) and torch.allclose(
        out[:, 12:], swapped[:, 12:]
    )
    # padding and missing tokens are zero cells; tokens past max_tokens are dropped
    short = pool(tokens[:, :2], mask[:, :2])
    assert torch.equal(short[:, 6:12], torch.zeros(2, 6))
    masked = pool(tokens, torch.tensor([[True, True, False, False]] * 2))
    assert torch.allclose(masked[:, :6], out[:, :6]) and torch.equal(
        masked[:, 6:12], torch.zeros(2, 6)
    )
    longer = pool(
        torch.cat([tokens, torch.randn(2, 3, 8)], dim=1), torch.ones(2, 7, dtype=torch.bool)
    )
    assert torch.allclose(longer[:, :12], out[:, :12])


def test_a_grid_head_projects_to_unit_vectors_and_learns() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(spec())
    tokens, mask = torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool)
    out = head(tokens.mean(dim=1), tokens, mask)
    assert out.shape == (3, 6) and torch.allclose(out.norm(dim=1), torch.ones(3))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    with pytest.raises(ValueError, match="needs tokens"):
        head(tokens.mean(dim=1))
    assert HeadConfig(pool="grid").uses_tokens
    with pytest.raises(ConfigError, match="cell"):
        HeadConfig(pool="grid", cell=0)
