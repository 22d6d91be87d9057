"""Missing-modality subsets and noise curves on re-encoded raw inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from evalkit import OracleModel, TinyModel, make_batches, oracle_batches
from PIL import Image

from omnifuse import encoders
from omnifuse.data.cache import CachedBatch
from omnifuse.eval.inference import predict, restrict
from omnifuse.eval.noise import get_noise
from omnifuse.eval.robustness import (
    NoiseProbe,
    drop_in_accuracy,
    missing_modality_scores,
    modality_subsets,
)
from omnifuse.types import Encoded


def test_subsets_enumerate_every_nonempty_combination() -> None:
    for m in range(1, 5):
        columns = [f"m{i}" for i in range(m)]
        subsets = modality_subsets(columns)
        assert len(subsets) == 2**m - 1 == len(set(subsets))
        assert subsets[0] == tuple(columns) and all(subsets)


def test_restrict_makes_dropped_columns_look_absent() -> None:
    batch = oracle_batches(n=8)[0]
    restricted = restrict(batch, ("a", "b"), ["b"])
    assert restricted.present.tolist() == [[False, True]] * 8
    a = restricted.features["a"]
    assert not a.mask.any() and not a.pooled.any() and not a.tokens.any()
    assert torch.equal(restricted.features["b"].pooled, batch.features["b"].pooled)
    missing_column = restrict(batch, ("a", "b", "c"))
    assert missing_column.present[:, 2].sum() == 0 and "c" not in missing_column.features


def test_missing_subset_scores_of_the_oracle() -> None:
    batches = oracle_batches(classes=4)
    labels = torch.cat([b.labels for b in batches if b.labels is not None])
    scores = {s.present: s.accuracy for s in missing_modality_scores(OracleModel(), batches)}
    assert scores == {
        ("a", "b"): 1.0,
        ("a",): 1.0,
        ("b",): pytest.approx(float((labels == 0).float().mean())),
    }
    drops = drop_in_accuracy(missing_modality_scores(OracleModel(), batches))
    assert drops == {"a": pytest.approx(1.0 - scores[("b",)]), "b": 0.0}


def test_missing_subsets_of_a_three_modality_fusion() -> None:
    torch.manual_seed(0)
    dims = {"x": 4, "y": 4, "z": 4}
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (20,), generator=g)
    batches = make_batches(labels, {m: torch.randn(20, 4, generator=g) for m in dims})
    scores = missing_modality_scores(TinyModel("mean", dims, 2), batches)
    assert len(scores) == 7 and all(0.0 <= s.accuracy <= 1.0 for s in scores)


def write_images(folder: Path, count: int) -> dict[str, str]:
    g = np.random.default_rng(0)
    paths = {}
    for i in range(count):
        pixels = g.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        pixels[:, : 4 * (i % 5)] = 255
        path = folder / f"img{i}.png"
        Image.fromarray(pixels).save(path)
        paths[f"s{i}"] = str(path)
    return paths


def test_noise_probe_reencodes_raw_inputs_and_starts_at_clean_accuracy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = encoders.create("cnn-image", dim=8, image_size=16, channels=(4,)).eval()
    raws = write_images(tmp_path, 12)
    clean = encoder.encode(list(raws.values()))
    rounded = Encoded(clean.tokens.half().float(), clean.mask, clean.pooled)
    labels = torch.arange(12) % 3
    other = torch.randn(12, 5, generator=torch.Generator().manual_seed(1))
    batches: list[CachedBatch] = make_batches(labels, {"image": clean.pooled, "other": other}, 5)
    for b, start in zip(batches, range(0, 12, 5), strict=True):
        part = slice(start, start + len(b.names))
        tokens, mask, pooled = rounded.tokens[part], rounded.mask[part], rounded.pooled[part]
        b.features["image"] = Encoded(tokens, mask, pooled)
    model = TinyModel("concat", {"image": 8, "other": 5}, 3)
    noise = get_noise("occlusion")
    probe = NoiseProbe.build(batches, raws, "image", encoder, noise, levels=[0.0, 0.5, 1.0], seed=3)
    assert len(probe.features) == 3 and len(probe.features[0]) == len(batches)
    for fresh, cached in zip(probe.features[0], batches, strict=True):
        assert torch.allclose(fresh.pooled, cached.features["image"].pooled, atol=1e-5)
    black = probe.features[2][0].pooled
    assert torch.allclose(black, black[:1].expand_as(black))  # every image fully occluded
    assert not torch.allclose(black, probe.features[0][0].pooled)
    curve = probe.curve(model, batches)
    assert curve.levels == [0.0, 0.5, 1.0] and curve.noise == "occlusion"
    assert curve.accuracy[0] == pytest.approx(predict(model, batches).accuracy())
    again = NoiseProbe.build(batches, raws, "image", encoder, noise, levels=[0.5], seed=3)
    assert torch.equal(again.features[0][1].pooled, probe.features[1][1].pooled)
    # a model without the perturbed column scores flat
    other_only = TinyModel("concat", {"other": 5}, 3)
    assert len(set(probe.curve(other_only, batches).accuracy)) == 1
