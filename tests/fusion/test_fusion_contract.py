"""Every registered fusion keeps the contract of ``omnifuse.fusion.base``.

The checks run over ``list_fusions()``, so a new fusion is covered as soon as it registers, with
its default options on tiny sizes: output shapes, finite values, gradients reaching every
parameter, any subset of modalities missing (marked absent or left out of the batch), explanation
weights, per-sample independence, determinism, and, for ``order_free`` fusions, invariance to the
order of the modalities.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import pytest
import torch

from omnifuse.fusion import Fusion, FusionOutput, fusions, list_fusions
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded

DIM = 16
NUM_CLASSES = 5
CONFIGS = {
    "two": {"audio": 12, "image": 20},
    "three": {"audio": 12, "image": 20, "text": 8},
    "four": {"audio": 12, "image": 20, "text": 8, "video": 24},
}
DIMS = CONFIGS["three"]
TOKEN_COUNTS = (40, 5, 9, 3)  # per modality in sorted order; 40 exceeds the usual max_tokens
NAMES = list_fusions()
ORDER_FREE = [n for n in NAMES if fusions.get(n).order_free]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine their spin-waits
    make every call orders of magnitude slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, dims: Mapping[str, int], *, seed: int = 0) -> Fusion:
    """Fusion ``name`` with default options at a tiny size (``num_classes`` for decision ones)."""
    torch.manual_seed(seed)
    cls = fusions.get(name)
    extra = {"num_classes": NUM_CLASSES} if cls.kind == "decision" else {}  # type: ignore[attr-defined]
    return cls(dims=dims, dim=DIM, **extra)


def make_features(dims: Mapping[str, int], batch: int, *, seed: int = 0) -> dict[str, Encoded]:
    """Random token sequences of variable real length (at least one token) per sample."""
    gen = torch.Generator().manual_seed(seed)
    features = {}
    for count, m in zip(TOKEN_COUNTS, sorted(dims), strict=False):
        tokens = torch.randn(batch, count, dims[m], generator=gen)
        lengths = torch.randint(1, count + 1, (batch, 1), generator=gen)
        mask = torch.arange(count) < lengths
        features[m] = Encoded(tokens, mask, masked_mean(tokens, mask))
    return features


def mixed_presence(batch: int, modalities: int, *, seed: int = 0) -> torch.Tensor:
    """Row 0 has every modality, row 1 none, the others a random subset."""
    gen = torch.Generator().manual_seed(seed)
    present = torch.rand(batch, modalities, generator=gen) < 0.6
    present[0] = True
    present[1] = False
    return present


def outputs(out: FusionOutput) -> dict[str, torch.Tensor]:
    """Every tensor a fusion returned, one row per sample; tokens zeroed at padding."""
    found = {"fused": out.fused}
    for field in ("logits", "weights"):
        value = getattr(out, field)
        if value is not None:
            found[field] = value
    if out.tokens is not None:
        assert out.token_mask is not None
        found["tokens"] = out.tokens * out.token_mask.unsqueeze(-1)
    for m, logits in (out.modality_logits or {}).items():
        found[f"modality_logits.{m}"] = logits
    return found


def comparable(out: FusionOutput) -> dict[str, torch.Tensor]:
    """:func:`outputs` with tokens as the (N, D) stack of the real ones, which does not depend
    on how much padding the batch carried."""
    found = outputs(out)
    if out.tokens is not None:
        assert out.token_mask is not None
        found["tokens"] = out.tokens[out.token_mask]
    return found


def check_shapes(fusion: Fusion, out: FusionOutput, batch: int) -> None:
    width = NUM_CLASSES if fusion.kind == "decision" else DIM
    assert out.fused.shape == (batch, width)
    if fusion.kind == "decision":
        assert out.logits is not None and out.logits.shape == (batch, NUM_CLASSES)
    if out.tokens is not None:
        assert out.token_mask is not None and out.token_mask.dtype == torch.bool
        assert out.tokens.shape[:2] == out.token_mask.shape and out.tokens.shape[0] == batch
    if out.weights is not None:
        assert out.weights.shape == (batch, len(fusion.modalities))
    for name, value in outputs(out).items():
        assert torch.isfinite(value).all(), f"{name} has NaN or inf"


def check_weights(out: FusionOutput, present: torch.Tensor) -> None:
    """Rows sum to 1 over the present modalities, exactly 0 on absent ones (all 0 if none)."""
    if out.weights is None:
        return
    w = out.weights
    assert (w[~present] == 0).all()
    assert (w >= 0).all()
    expected = present.any(dim=1).to(w.dtype)
    torch.testing.assert_close(w.sum(dim=1), expected)


def test_registry_holds_the_feature_zoo() -> None:
    feature = {"concat", "sum", "mean", "max", "weighted", "gated", "attention"}
    feature |= {"cross-attention", "transformer", "tensor", "low-rank-tensor", "bilinear"}
    assert feature <= set(NAMES)
    for name in NAMES:
        cls = fusions.get(name)
        assert cls.kind in ("feature", "decision")  # type: ignore[attr-defined]
        assert isinstance(cls.order_free, bool)  # type: ignore[attr-defined]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", NAMES)
def test_shapes_finite_values_and_gradients(name: str, config: str) -> None:
    dims = CONFIGS[config]
    fusion = build(name, dims)
    fusion.train()
    batch = 6
    present = mixed_presence(batch, len(dims))
    out = fusion(make_features(dims, batch), present)
    check_shapes(fusion, out, batch)
    check_weights(out, present)

    gen = torch.Generator().manual_seed(1)
    loss = sum(
        (value * torch.randn(value.shape, generator=gen)).sum() + value.pow(2).sum()
        for value in outputs(out).values()
    )
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    for pname, param in fusion.named_parameters():
        assert param.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert param.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", NAMES)
def test_any_subset_of_modalities_may_be_missing(name: str, config: str) -> None:
    """Marking a modality absent and leaving it out of the batch are the same thing: the
    features of an absent modality never reach the output."""
    dims = CONFIGS[config]
    modalities = sorted(dims)
    fusion = build(name, dims).eval()
    for batch in (1, 3):
        features = make_features(dims, batch, seed=batch)
        for count in range(len(modalities) + 1):
            for absent in itertools.combinations(range(len(modalities)), count):
                present = torch.ones(batch, len(modalities), dtype=torch.bool)
                present[:, list(absent)] = False
                kept = {m: features[m] for i, m in enumerate(modalities) if i not in absent}
                with torch.no_grad():
                    marked = fusion(features, present)
                    dropped = fusion(kept, present)
                check_shapes(fusion, marked, batch)
                check_weights(marked, present)
                expected = comparable(marked)
                for key, value in comparable(dropped).items():
                    torch.testing.assert_close(
                        value, expected[key], atol=1e-5, rtol=1e-4, msg=f"{key} {absent}"
                    )


@pytest.mark.parametrize("name", NAMES)
def test_weights_and_outputs_in_train_and_eval_mode(name: str) -> None:
    fusion = build(name, DIMS)
    batch = 8
    features = make_features(DIMS, batch)
    present = mixed_presence(batch, len(DIMS), seed=3)
    for train in (True, False):
        fusion.train(train)
        with torch.no_grad():
            check_weights(fusion(features, present), present)
    with torch.no_grad():
        first, second = fusion(features, present), fusion(features, present)
    for key, value in outputs(first).items():
        assert torch.equal(outputs(second)[key], value), f"{key} differs between two eval runs"


@pytest.mark.parametrize("name", NAMES)
def test_runs_under_bfloat16_autocast(name: str) -> None:
    """Mixed-precision training (``bf16``) keeps outputs finite and weights normalised."""
    fusion = build(name, DIMS)
    present = mixed_presence(6, len(DIMS), seed=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fusion(make_features(DIMS, 6, seed=6), present)
    check_shapes(fusion, out, 6)
    check_weights(out, present)
    out.fused.float().pow(2).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_samples_do_not_affect_each_other(name: str) -> None:
    fusion = build(name, DIMS).eval()
    batch = 5
    features = make_features(DIMS, batch, seed=4)
    present = mixed_presence(batch, len(DIMS), seed=4)
    with torch.no_grad():
        together = outputs(fusion(features, present))
        for b in range(batch):
            one = {m: Encoded(*(t[b : b + 1] for t in e)) for m, e in features.items()}
            alone = outputs(fusion(one, present[b : b + 1]))
            for key, value in alone.items():
                torch.testing.assert_close(value[0], together[key][b], atol=1e-5, rtol=1e-4)


RENAME = {"a": "c", "b": "a", "c": "b"}  # moves every modality to another sorted position
ABC = {"a": 12, "b": 20, "c": 8}


def renamed_state(fusion: Fusion) -> dict[str, torch.Tensor]:
    """``fusion``'s parameters for the same modalities under the names of ``RENAME``.

    Per-modality parameters live either under a module or parameter keyed by modality name
    (renamed here) or in a tensor whose first axis is the modality (reordered here). With three
    modalities, no other parameter at these sizes has a first axis of length 3."""
    old = list(fusion.modalities)
    new = sorted(RENAME[m] for m in old)
    source = {RENAME[m]: i for i, m in enumerate(old)}
    order = [source[m] for m in new]  # new position j holds old modality order[j]
    state = {}
    for key, value in fusion.state_dict().items():
        parts = key.split(".")
        if any(p in RENAME for p in parts):
            state[".".join(RENAME.get(p, p) for p in parts)] = value
        elif value.dim() >= 1 and value.shape[0] == len(old):
            state[key] = value[order]
        else:
            state[key] = value
    return state


def run_renamed(name: str) -> tuple[FusionOutput, FusionOutput, list[int]]:
    """The same fusion and inputs before and after renaming the modalities by ``RENAME``."""
    original = build(name, ABC).eval()
    renamed = build(name, {RENAME[m]: d for m, d in ABC.items()}, seed=1).eval()
    renamed.load_state_dict(renamed_state(original))
    features = make_features(ABC, 6, seed=5)
    present = mixed_presence(6, 3, seed=5)
    order = [list(original.modalities).index(m) for m in sorted(ABC, key=lambda m: RENAME[m])]
    with torch.no_grad():
        before = original(features, present)
        after = renamed({RENAME[m]: e for m, e in features.items()}, present[:, order])
    return before, after, order


@pytest.mark.parametrize("name", ORDER_FREE)
def test_order_free_fusions_ignore_modality_order(name: str) -> None:
    before, after, order = run_renamed(name)
    torch.testing.assert_close(after.fused, before.fused, atol=1e-5, rtol=1e-4)
    if before.logits is not None:
        torch.testing.assert_close(after.logits, before.logits, atol=1e-5, rtol=1e-4)
    if before.weights is not None:
        assert after.weights is not None
        torch.testing.assert_close(after.weights, before.weights[:, order], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["concat", "tensor"])
def test_order_check_detects_order_dependent_fusions(name: str) -> None:
    """The renaming check above is able to fail: fusions that concatenate do change."""
    assert not fusions.get(name).order_free  # type: ignore[attr-defined]
    before, after, _ = run_renamed(name)
    assert (after.fused - before.fused).abs().max() > 1e-3
