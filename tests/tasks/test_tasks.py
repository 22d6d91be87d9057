"""Tasks: target encoding, losses (with the modality-head auxiliary term), grouped metrics,
and caption–image matching pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.errors import ConfigError, UnknownComponentError
from omnifuse.tasks import create_task, list_tasks
from omnifuse.tasks.classification import label_set
from omnifuse.tasks.matching import matching_pairs, write_matching_manifest


def test_registry_lists_the_builtin_tasks() -> None:
    assert list_tasks() == ["classification", "matching", "multilabel", "regression", "vqa"]
    with pytest.raises(UnknownComponentError):
        create_task("classify", ["a"])


def test_classification_targets_loss_and_top() -> None:
    task = create_task("classification", ["cat", "dog", "owl"])
    assert task.output_dim == 3
    targets = task.encode_targets(["dog", "owl", "cat"])
    assert targets.tolist() == [1, 2, 0]
    logits = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.5, 0.0, 0.0]])
    assert task.loss(logits, targets).item() == pytest.approx(
        F.cross_entropy(logits, targets).item()
    )
    best = task.top(logits, k=2)
    assert [label for label, _ in best[0]] == ["dog", "cat"]
    assert best[0][0][1] == pytest.approx(torch.softmax(logits[0], 0)[1].item())
    with pytest.raises(ConfigError, match="'bat' is not one of the 3 classes"):
        task.encode_target("bat")


def test_numeric_labels_find_their_class_names() -> None:
    task = create_task("classification", [str(i) for i in range(10)])
    assert task.encode_target(7).item() == 7


def test_classification_metrics_hold_confusion_and_per_class_scores() -> None:
    task = create_task("classification", ["a", "b"])
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    metrics = task.metrics(logits, torch.tensor([0, 1, 1, 1]))
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion"] == [[1, 0], [1, 2]]
    assert metrics["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert metrics["count"] == 4


def test_auxiliary_loss_averages_modality_heads_over_present_pairs() -> None:
    task = create_task("classification", ["a", "b", "c"], aux_weight=0.5)
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    per_modality = {"audio": torch.randn(4, 3), "image": torch.randn(4, 3)}
    targets = torch.tensor([0, 1, 2, 1])
    present = torch.tensor([[True, True], [True, False], [False, True], [True, True]])
    audio = F.cross_entropy(per_modality["audio"], targets, reduction="none")
    image = F.cross_entropy(per_modality["image"], targets, reduction="none")
    pairs = torch.cat([audio[present[:, 0]], image[present[:, 1]]])
    expected = F.cross_entropy(logits, targets) + 0.5 * pairs.mean()
    got = task.loss(logits, targets, per_modality, present, ("audio", "image"))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_vqa_adds_accuracy_per_question_type() -> None:
    task = create_task("vqa", ["red", "blue", "two"])
    logits = torch.tensor([[3.0, 0, 0], [3.0, 0, 0], [0, 0, 3.0], [0, 3.0, 0]])
    targets = task.encode_targets(["red", "blue", "two", "two"])
    rows = [{"qtype": "colour"}, {"qtype": "colour"}, {"qtype": "count"}, {"qtype": "count"}]
    metrics = task.metrics(logits, targets, rows)
    assert metrics["accuracy"] == 0.5
    assert metrics["accuracy_by_qtype"] == {"colour": 0.5, "count": 0.5}


def test_multilabel_reads_lists_and_pipe_strings() -> None:
    task = create_task("multilabel", ["cat", "dog", "owl"])
    assert label_set("dog | owl") == ["dog", "owl"]
    assert task.encode_target("dog|owl").tolist() == [0.0, 1.0, 1.0]
    assert task.encode_target(["owl", "dog"]).tolist() == [0.0, 1.0, 1.0]
    assert type(task).infer_classes(["b|a", ["c"], "a"]) == ["a", "b", "c"]
    logits = torch.tensor([[-2.0, 2.0, 2.0], [2.0, -2.0, 2.0]])
    targets = task.encode_targets(["dog|owl", "cat"])
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    assert task.loss(logits, targets).item() == pytest.approx(expected.item())
    metrics = task.metrics(logits, targets)
    assert metrics["subset_accuracy"] == 0.5
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))


def test_regression_targets_and_metrics() -> None:
    task = create_task("regression")
    assert task.output_dim == 1
    targets = task.encode_targets([1.0, 2.0, 4.0])
    logits = torch.tensor([[1.0], [2.0], [5.0]])
    assert task.loss(logits, targets).item() == pytest.approx(1 / 3)
    metrics = task.metrics(logits, targets)
    assert metrics["mae"] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError):
        task.encode_target("tall")


def test_matching_task_has_fixed_classes_and_reads_booleans() -> None:
    task = create_task("matching")
    assert task.classes == ["mismatch", "match"]
    assert [task.class_index(v) for v in (True, "match", 0, "mismatch")] == [1, 1, 0, 0]
    logits = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    metrics = task.metrics(logits, torch.tensor([1, 0, 0]))
    assert metrics["auc"] == 1.0
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def _scenes(count: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"s{i}",
            "split": "train" if i < count - 2 else "test",
            "image": f"img{i}.png",
            "caption": "a red circle" if i in (0, 1) else f"caption {i}",
        }
        for i in range(count)
    ]


def test_matching_pairs_are_deterministic_and_true_negatives() -> None:
    scenes = _scenes(8)
    pairs = matching_pairs(scenes, seed=3)
    assert pairs == matching_pairs(scenes, seed=3)
    assert pairs != matching_pairs(scenes, seed=4)
    by_id = {p["id"]: p for p in pairs}
    for scene in scenes:
        positive = by_id[f"{scene['id']}:match"]
        negative = by_id[f"{scene['id']}:mismatch"]
        assert positive["image"] == scene["image"] and positive["match"] == "match"
        assert negative["caption"] == scene["caption"] and negative["match"] == "mismatch"
        donor = next(s for s in scenes if s["image"] == negative["image"])
        assert donor["split"] == scene["split"]
        assert donor["caption"] != scene["caption"]  # s0 and s1 share a caption: never paired


def test_write_matching_manifest_keeps_media_paths(tmp_path: Path) -> None:
    for i in range(6):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / f"img{i}.png")
    schema = ManifestSchema(modalities={"image": "image", "caption": "text"}, labels=[])
    write_manifest(tmp_path / "scenes.jsonl", _scenes(6), schema)
    out = write_matching_manifest(tmp_path / "scenes.jsonl", tmp_path / "pairs.jsonl", seed=0)
    pairs = load_manifest(out, strict=True)
    assert len(pairs) == 12
    assert pairs.schema.labels == ["match"]
    assert all(Path(s["image"]).is_file() for s in pairs.samples)
