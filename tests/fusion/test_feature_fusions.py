"""Feature-level fusions compute the formulas they state, handle missing modalities as documented,
and learn a task that needs two modalities together."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fusion import create_fusion
from omnifuse.fusion.attention import AttentionFusion
from omnifuse.fusion.pooled import ConcatFusion, GatedFusion, WeightedFusion
from omnifuse.fusion.tensor import BilinearFusion, LowRankTensorFusion, TensorFusion
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded

DIMS = {"audio": 6, "image": 5, "text": 4}
DIM = 8
PRESENT = torch.tensor(
    [[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.bool
)  # all, some, one, none, some


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, which only contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def features(dims: dict[str, int] = DIMS, batch: int = 5, seed: int = 0) -> dict[str, Encoded]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in dims.items():
        tokens = torch.randn(batch, 3, d, generator=gen)
        mask = torch.ones(batch, 3, dtype=torch.bool)
        out[m] = Encoded(tokens, mask, masked_mean(tokens, mask))
    return out


def linear(module: nn.Module) -> nn.Linear:
    assert isinstance(module, nn.Linear)
    return module


def used(row: torch.Tensor) -> list[int]:
    """Modalities a pooling fusion combines: the present ones, or all when none is."""
    present = [i for i, p in enumerate(row.tolist()) if p]
    return present or list(range(len(row)))


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("sum", lambda vs: torch.stack(vs).sum(0)),
        ("mean", lambda vs: torch.stack(vs).mean(0)),
        ("max", lambda vs: torch.stack(vs).max(0).values),
    ],
)
def test_pooling_over_present_modality_vectors(name: str, formula: object) -> None:
    torch.manual_seed(0)
    fusion = create_fusion(name, DIMS, dim=DIM).eval()
    feats = features()
    with torch.no_grad():
        v = fusion.vectors(feats, PRESENT)  # type: ignore[operator]
        fused = fusion(feats, PRESENT).fused
    for b in range(len(PRESENT)):
        expected = formula([v[b, i] for i in used(PRESENT[b])])  # type: ignore[operator]
        torch.testing.assert_close(fused[b], expected)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "weighted", "attention"])
def test_pooling_fusions_ignore_missing_embeddings_unless_nothing_is_present(name: str) -> None:
    torch.manual_seed(0)
    fusion = create_fusion(name, DIMS, dim=DIM).eval()
    feats = features()
    with torch.no_grad():
        before = fusion(feats, PRESENT).fused
        fusion.vectors.missing.add_(1.0)  # type: ignore[union-attr, operator]
        after = fusion(feats, PRESENT).fused
    nothing = ~PRESENT.any(dim=1)
    torch.testing.assert_close(after[~nothing], before[~nothing])
    assert (after[nothing] - before[nothing]).abs().min() > 0.1


def test_missing_embedding_replaces_an_absent_modality() -> None:
    torch.manual_seed(0)
    fusion = ConcatFusion(DIMS, dim=DIM).eval()
    feats = features()
    no_text = PRESENT.clone()
    no_text[:, 2] = False
    with torch.no_grad():
        v = fusion.vectors(feats, no_text)
        without_text = fusion.vectors({m: e for m, e in feats.items() if m != "text"}, no_text)
    for b, i in itertools.product(range(len(PRESENT)), range(len(DIMS))):
        if no_text[b, i]:
            assert (v[b, i] - fusion.vectors.missing[i]).abs().max() > 0.1
        else:
            torch.testing.assert_close(v[b, i], fusion.vectors.missing[i])
    torch.testing.assert_close(without_text, v)


def test_concat_is_an_mlp_of_the_concatenated_vectors() -> None:
    torch.manual_seed(0)
    fusion = ConcatFusion(DIMS, dim=DIM, hidden=7).eval()
    feats = features()
    first, second = linear(fusion.mlp[0]), linear(fusion.mlp[3])
    with torch.no_grad():
        flat = fusion.vectors(feats, PRESENT).flatten(1)  # F = [v_audio; v_image; v_text]
        expected = F.relu(flat @ first.weight.T + first.bias) @ second.weight.T + second.bias
        torch.testing.assert_close(fusion(feats, PRESENT).fused, expected)


def test_weighted_average_with_hand_set_weights() -> None:
    torch.manual_seed(0)
    fusion = WeightedFusion(DIMS, dim=DIM).eval()
    feats = features()
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.2, 0.3, 0.5]).log())
        out = fusion(feats, PRESENT)
        v = fusion.vectors(feats, PRESENT)
    expected_weights = torch.tensor(
        [
            [0.2, 0.3, 0.5],
            [0.2 / 0.7, 0.0, 0.5 / 0.7],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0],  # nothing present: no modality gets credit
            [0.0, 0.3 / 0.8, 0.5 / 0.8],
        ]
    )
    assert out.weights is not None
    torch.testing.assert_close(out.weights, expected_weights)
    mixing = expected_weights.clone()
    mixing[3] = torch.tensor([0.2, 0.3, 0.5])  # ...but the output mixes the missing embeddings
    torch.testing.assert_close(out.fused, torch.einsum("bm,bmd->bd", mixing, v))


def test_attention_weights_are_a_softmax_over_present_modalities() -> None:
    torch.manual_seed(0)
    fusion = AttentionFusion(DIMS, dim=DIM).eval()
    feats = features()
    with torch.no_grad():
        out = fusion(feats, PRESENT)
        v = fusion.vectors(feats, PRESENT)
        hidden, score = linear(fusion.score[0]), linear(fusion.score[2])
        scores = (torch.tanh(v @ hidden.weight.T + hidden.bias) @ score.weight.T).squeeze(-1)
    assert out.weights is not None
    for b in range(len(PRESENT)):
        idx = used(PRESENT[b])
        a = torch.zeros(len(DIMS))
        a[idx] = torch.softmax(scores[b, idx], dim=0)
        torch.testing.assert_close(out.fused[b], (a.unsqueeze(-1) * v[b]).sum(0))
        if PRESENT[b].any():
            torch.testing.assert_close(out.weights[b], a)
        else:
            assert (out.weights[b] == 0).all()


def test_gated_unit_formula() -> None:
    torch.manual_seed(0)
    fusion = GatedFusion(DIMS, dim=DIM).eval()
    feats = features()
    with torch.no_grad():
        out = fusion(feats, PRESENT)
        v = fusion.vectors(feats, PRESENT)  # (B, M, dim)
        gates = fusion.gate(v.flatten(1)).view_as(v)
    assert out.weights is not None
    for b in range(len(PRESENT)):
        idx = used(PRESENT[b])
        z = torch.softmax(gates[b, idx], dim=0)  # (|idx|, dim), per feature over modalities
        torch.testing.assert_close(out.fused[b], (z * torch.tanh(v[b, idx])).sum(0))
        if PRESENT[b].any():
            torch.testing.assert_close(out.weights[b, idx], z.mean(dim=1))


def test_gated_unit_with_two_modalities_is_a_sigmoid_gate() -> None:
    torch.manual_seed(0)
    dims = {"image": 5, "text": 4}
    fusion = GatedFusion(dims, dim=DIM).eval()
    feats = features(dims, batch=3)
    present = torch.ones(3, 2, dtype=torch.bool)
    with torch.no_grad():
        v = fusion.vectors(feats, present)
        g = fusion.gate(v.flatten(1)).view_as(v)
        z = torch.sigmoid(g[:, 0] - g[:, 1])
        expected = z * torch.tanh(v[:, 0]) + (1 - z) * torch.tanh(v[:, 1])
        torch.testing.assert_close(fusion(feats, present).fused, expected)


def test_tensor_fusion_is_a_linear_map_of_the_outer_product_with_appended_ones() -> None:
    torch.manual_seed(0)
    fusion = TensorFusion(DIMS, dim=DIM, modality_dim=2).eval()
    assert fusion.out.in_features == 3**3
    feats = features()
    with torch.no_grad():
        z = fusion.vectors(feats, PRESENT)
        fused = fusion(feats, PRESENT).fused
    for b in range(len(PRESENT)):
        a, i, t = ([*z[m][b].tolist(), 1.0] for m in ("audio", "image", "text"))
        outer = torch.tensor([x * y * w for x, y, w in itertools.product(a, i, t)])
        torch.testing.assert_close(fused[b], fusion.out.weight @ outer + fusion.out.bias)
        # the appended 1s keep each unimodal term: the product holds z_audio itself
        # (index x·9 + y·3 + w; the 1s sit at y = 2, w = 2)
        torch.testing.assert_close(outer[[8, 17]], torch.tensor(a[:2]), atol=1e-6, rtol=1e-5)


def test_tensor_fusion_refuses_a_product_that_is_too_large() -> None:
    dims = {f"m{i}": 4 for i in range(4)}
    with pytest.raises(ConfigError, match="max_entries"):
        TensorFusion(dims, modality_dim=32)  # 33^4 ≈ 1.2M entries
    with pytest.raises(ConfigError, match="max_entries"):
        TensorFusion({"a": 3, "b": 3}, modality_dim=9, max_entries=99)  # 10 × 10 = 100
    assert TensorFusion({"a": 3, "b": 3}, modality_dim=9, max_entries=100).out.in_features == 100


def test_low_rank_tensor_fusion_equals_tensor_fusion_with_the_rank_r_weight() -> None:
    sizes = {"audio": 2, "image": 3, "text": 2}
    torch.manual_seed(0)
    low_rank = LowRankTensorFusion(DIMS, dim=DIM, rank=3, modality_dims=sizes).eval()
    full = TensorFusion(DIMS, dim=DIM, modality_dims=sizes).eval()
    full.vectors.load_state_dict(low_rank.vectors.state_dict())
    a, i, t = (low_rank.factors[m] for m in ("audio", "image", "text"))  # (R, d_m + 1, dim)
    # W[(x, y, w), o] = Σ_r λ_r a[r, x, o] i[r, y, o] t[r, w, o], flattened like the outer product
    weight = torch.einsum("r,rxo,ryo,rwo->xywo", low_rank.rank_weights, a, i, t)
    with torch.no_grad():
        full.out.weight.copy_(weight.reshape(-1, DIM).T)
        full.out.bias.copy_(low_rank.bias)
        feats = features()
        torch.testing.assert_close(
            low_rank(feats, PRESENT).fused, full(feats, PRESENT).fused, atol=1e-5, rtol=1e-4
        )


def test_low_rank_tensor_fusion_in_multibench_av_mnist_setting() -> None:
    """``LowRankTensorFusion([48, 192], 120, 40)`` of MultiBench's avmnist_low_rank_tensor.py."""
    fusion = create_fusion(
        "low-rank-tensor",
        {"audio": 256, "image": 1280},
        dim=120,
        rank=40,
        modality_dims={"image": 48, "audio": 192},
    )
    assert isinstance(fusion, LowRankTensorFusion)
    assert tuple(fusion.factors["image"].shape) == (40, 49, 120)
    assert tuple(fusion.factors["audio"].shape) == (40, 193, 120)
    assert fusion.rank_weights.numel() == 40 and fusion.bias.numel() == 120
    out = fusion(features({"audio": 256, "image": 1280}, batch=2), torch.ones(2, 2).bool())
    assert out.fused.shape == (2, 120)
    with pytest.raises(ConfigError, match="unknown modalities"):
        create_fusion("low-rank-tensor", {"image": 4}, modality_dims={"video": 8})


def mfb_reference(xs: list[torch.Tensor], layers: list[torch.nn.Linear], k: int) -> torch.Tensor:
    """MFB by its definition: SumPool_k(Π U_m^T x_m), sign(z) sqrt(|z|), z / ||z||."""
    joint = math.prod(layer(x) for layer, x in zip(layers, xs, strict=True))
    assert isinstance(joint, torch.Tensor)
    pooled = joint.view(joint.shape[0], -1, k).sum(-1)
    powered = torch.sign(pooled) * pooled.abs().sqrt()
    return powered / powered.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("dims", [{"image": 5, "text": 4}, DIMS])
def test_bilinear_equals_factorised_bilinear_pooling(dims: dict[str, int]) -> None:
    torch.manual_seed(0)
    fusion = BilinearFusion(dims, dim=DIM, factor=3).eval()
    batch = 4
    feats = features(dims, batch=batch)
    with torch.no_grad():
        fused = fusion(feats, torch.ones(batch, len(dims), dtype=torch.bool)).fused
        layers = [linear(fusion.vectors.project[m][0]) for m in sorted(dims)]  # type: ignore[index]
        expected = mfb_reference([feats[m].pooled for m in sorted(dims)], layers, 3)
    torch.testing.assert_close(fused, expected, atol=2e-3, rtol=0)  # eps of the signed sqrt
    torch.testing.assert_close(fused.norm(dim=-1), torch.ones(batch))


def test_token_fusions_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="two modalities"):
        create_fusion("cross-attention", {"image": 4})
    with pytest.raises(ConfigError, match="query"):
        create_fusion("cross-attention", DIMS, query="video")
    with pytest.raises(ConfigError, match="heads"):
        create_fusion("transformer", DIMS, dim=10, heads=4)
    with pytest.raises(ConfigError, match="layers"):
        create_fusion("transformer", DIMS, layers=0)


def test_cross_attention_query_attends_to_the_context() -> None:
    torch.manual_seed(0)
    fusion = create_fusion("cross-attention", DIMS, dim=DIM, heads=2, query="text").eval()
    feats = features()
    present = torch.ones(5, 3, dtype=torch.bool)
    changed = dict(feats)
    tokens = feats["image"].tokens + 1.0
    changed["image"] = Encoded(
        tokens, feats["image"].mask, masked_mean(tokens, feats["image"].mask)
    )
    with torch.no_grad():
        out = fusion(feats, present)
        moved = fusion(changed, present)
    # the attended text tokens: 3 real ones and the (masked) missing token
    assert out.tokens is not None and out.tokens.shape == (5, 4, DIM)
    assert out.token_mask is not None and out.token_mask.sum(dim=1).tolist() == [3] * 5
    assert moved.tokens is not None and (moved.tokens - out.tokens).abs().max() > 1e-3


def test_transformer_reads_out_cls_and_bounds_tokens() -> None:
    torch.manual_seed(0)
    fusion = create_fusion("transformer", {"audio": 6, "text": 4}, dim=DIM, heads=2, max_tokens=4)
    gen = torch.Generator().manual_seed(0)
    long_audio = torch.randn(2, 50, 6, generator=gen)
    mask = torch.ones(2, 50, dtype=torch.bool)
    feats = {
        "audio": Encoded(long_audio, mask, long_audio.mean(1)),
        "text": features({"text": 4}, batch=2)["text"],
    }
    out = fusion.eval()(feats, torch.tensor([[True, True], [False, True]]))
    # 50 audio frames pooled to 4, + 1 missing token each for audio and text; 3 text tokens
    assert out.tokens is not None and out.tokens.shape == (2, 4 + 1 + 3 + 1, DIM)
    assert out.token_mask is not None
    assert out.token_mask.sum(dim=1).tolist() == [4 + 3, 1 + 3]
    assert out.weights is not None and out.weights[1, 0] == 0 and out.weights[1, 1] == 1


def xor_or_sum_task(
    n: int, seed: int, task: str
) -> tuple[dict[str, Encoded], torch.Tensor, torch.Tensor]:
    """Two 4-d modalities; the label is ``a_0 + b_0 > 0`` ("sum") or ``(a_0 > 0) xor (b_0 > 0)``
    ("xor"). With one modality alone the best possible accuracy is 0.75 ("sum") or 0.5 ("xor")."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 4, generator=gen), torch.randn(n, 4, generator=gen)
    label = (a[:, 0] > 0) ^ (b[:, 0] > 0) if task == "xor" else a[:, 0] + b[:, 0] > 0
    one = torch.ones(n, 1, dtype=torch.bool)
    feats = {m: Encoded(x.unsqueeze(1), one, x) for m, x in (("a", a), ("b", b))}
    return feats, torch.ones(n, 2, dtype=torch.bool), label.long()


# A linear head on a sum of per-modality terms is additive in the modalities, so it cannot
# express XOR; those fusions get the additive task, every other one the XOR task.
LEARNING = {
    "sum": ("sum", 0.9),
    "mean": ("sum", 0.9),
    "weighted": ("sum", 0.9),
    "attention": ("sum", 0.9),
    "concat": ("xor", 0.85),
    "max": ("xor", 0.85),
    "gated": ("xor", 0.85),
    "cross-attention": ("xor", 0.85),
    "transformer": ("xor", 0.85),
    "tensor": ("xor", 0.85),
    "low-rank-tensor": ("xor", 0.85),
    "bilinear": ("xor", 0.85),
}
SMALL = {"transformer": {"layers": 1, "heads": 2}, "cross-attention": {"heads": 2}}


def fit_and_score(name: str, task: str, steps: int = 150) -> float:
    train_x, train_p, train_y = xor_or_sum_task(256, 0, task)
    test_x, test_p, test_y = xor_or_sum_task(512, 1, task)
    torch.manual_seed(0)
    options = {"rank": 8} if name == "low-rank-tensor" else SMALL.get(name, {})
    fusion = create_fusion(name, {"a": 4, "b": 4}, dim=16, dropout=0.0, **options)
    head = torch.nn.Linear(16, 2)
    optimizer = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(head(fusion(train_x, train_p).fused), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fusion.eval()
    with torch.no_grad():
        predicted = head(fusion(test_x, test_p).fused).argmax(dim=1)
    return float((predicted == test_y).float().mean())


@pytest.mark.parametrize("name", LEARNING)
def test_fusion_learns_a_task_that_needs_both_modalities(name: str) -> None:
    task, floor = LEARNING[name]
    assert fit_and_score(name, task) >= floor


def test_additive_fusion_cannot_learn_xor_with_a_linear_head() -> None:
    """The control for the XOR task: it is not solvable without a modality interaction."""
    assert fit_and_score("sum", "xor") < 0.65
