"""The matcher: a cross-encoder over description and image tokens, trained on a world split's
edits, saved beside the aligned model and read by the calibration, the checker and the route."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from alignkit import effnet_config
from typer.testing import CliRunner

from omnifuse.align import AlignConfig, AlignResult, load_aligned, train_alignment
from omnifuse.align.consistency import ConsistencyChecker, NotCalibratedError, read_calibration
from omnifuse.align.consistency.match_train import (
    MatchTraining,
    match_set,
    matcher_view,
)
from omnifuse.align.consistency.matcher import (
    MATCHER_FOLDER,
    Matcher,
    MatcherConfig,
    has_matcher,
    image_features,
    load_matcher,
    pixel_patches,
    speech_prompt,
)
from omnifuse.align.consistency.train import ConsistencyTraining, add_matcher, split_edits
from omnifuse.cli import app
from omnifuse.errors import ConfigError

runner = CliRunner()
SMALL = MatchTraining(
    dim=32, layers=1, heads=2, epochs=8, per_scene=10, patience=None, batch_size=8, lr=2e-3
)


@pytest.fixture(scope="module")
def matched(tiny_run: AlignResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny aligned model with a small matcher, calibrated on its val scenes."""
    folder = tmp_path_factory.mktemp("matcher") / "model"
    shutil.copytree(tiny_run.folder, folder)
    add_matcher(folder, SMALL)
    return folder


def test_padding_does_not_change_a_logit() -> None:
    torch.manual_seed(0)
    config = MatcherConfig(text_dim=8, image_dim=6, dim=16, heads=2, pixels=8, patch=4)
    matcher = Matcher(config).eval()
    short, long = torch.randn(3, 8), torch.randn(9, 8)
    image, patches = torch.randn(config.patches, 6), torch.randn(config.patches, 48)
    alone = matcher.score([short], [image], [patches])
    together = matcher.score([short, long], [image, image], [patches, patches])
    assert together[0].item() == pytest.approx(alone[0].item(), abs=1e-5)
    # the pixel view is read: other patches, another logit
    assert matcher.score([short], [image], [-patches])[0].item() != pytest.approx(
        alone[0].item(), abs=1e-4
    )
    with pytest.raises(ValueError, match="pixel patches"):
        matcher.score([short], [image])
    with pytest.raises(ConfigError, match="multiple of heads"):
        MatcherConfig(dim=30, heads=4)
    with pytest.raises(ConfigError, match="multiple of patch"):
        MatcherConfig(pixels=30, patch=4)


def test_pixel_patches_cut_the_squeezed_image_row_by_row() -> None:
    from PIL import Image

    picture = Image.new("RGB", (64, 64), (255, 0, 0))
    picture.paste((0, 0, 255), (32, 0, 64, 32))  # the top-right quarter blue
    (patches,) = pixel_patches([picture], MatcherConfig(pixels=8, patch=4))
    assert patches.shape == (4, 48)
    # the outer corner pixel of each patch: away from the blurred border between the colours
    red, blue = patches[0].view(3, 16)[:, 0], patches[1].view(3, 16)[:, 3]
    assert red.tolist() == pytest.approx([1.0, -1.0, -1.0], abs=0.02)
    assert blue.tolist() == pytest.approx([-1.0, -1.0, 1.0], abs=0.02)


def test_the_matcher_learns_which_word_binds_to_which_cell() -> None:
    """A binding task a pooled vector cannot solve: the description names a colour and a
    place, the image holds two coloured cells; it fits only when the named colour sits at the
    named place."""
    from omnifuse.align.consistency.match_train import MatchSet, fit_match_set

    rng = np.random.default_rng(0)
    colours, places = torch.eye(4), torch.eye(4)[:, :2]  # 4 colours, 2 places (top, bottom)

    def scene(count: int) -> MatchSet:
        texts, images, examples = [], [], []
        for n in range(count):
            a, b = rng.choice(4, size=2, replace=False)
            grid = torch.zeros(4, 4)
            grid[0], grid[3] = colours[a], colours[b]  # a on top, b at the bottom
            colour, place = (a, 0) if rng.random() < 0.5 else (b, 1)
            if rng.random() < 0.5:  # the other colour at this place: does not fit
                colour, fits = (b if place == 0 else a), 0
            else:
                fits = 1
            words = torch.cat([colours[colour], places[place]])
            texts.append(torch.stack([torch.zeros(6), words, torch.zeros(6)]))
            images.append(grid)
            examples.append([(n, n, fits, "own" if fits else "colour")])
        return MatchSet(texts, images, examples)

    settings = MatchTraining(
        dim=32, layers=2, heads=2, epochs=40, batch_size=8, lr=3e-3, dropout=0.0, patience=None
    )
    settings = dataclasses.replace(settings, weight_decay=0.0, pixel_view=False)
    _, result = fit_match_set(scene(256), scene(64), settings)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0], [round(x, 3) for x in losses]
    assert result.best_metric > 0.9  # on scenes it never saw


def test_a_world_split_gives_every_kind_of_example(tiny_run: AlignResult) -> None:
    from omnifuse.align.consistency.train import recipe_of
    from omnifuse.align.data import load_training_data
    from omnifuse.align.model import load_aligned

    manifest, splits = load_training_data(recipe_of(tiny_run.folder), tiny_run.folder)
    model = load_aligned(tiny_run.folder)
    edits = split_edits(model, manifest, splits, ConsistencyTraining())
    view = matcher_view(model, splits["train"], dataclasses.replace(SMALL, pixel_view=True))
    train = match_set(model, splits["train"], edits["train"], premises=True, seed=0, view=view)
    assert train.patches is not None and len(train.patches) == len(train.images)
    assert len(train.images) == len(splits["train"]) + len(edits["train"])
    kinds = {k for row in train.examples for _, _, _, k in row}
    assert {"own", "own-edited", "other", "colour", "shape", "count", "premise"} <= kinds
    for row, examples in enumerate(train.examples):
        assert (row, row, 1, "own") in examples
        for image, text, _, kind in examples:  # an edit's caption fits its own drawing only
            if kind == "own-edited":
                assert image == text and image >= len(splits["train"])
    batch = train.batch(train.flat([0, 1]))
    assert batch["patches"].shape[:2] == batch["image"].shape[:2]


def test_the_calibration_reads_the_matcher_and_the_checker_uses_it(
    matched: Path, tiny_world: Path
) -> None:
    assert has_matcher(matched) and (matched / MATCHER_FOLDER.weights_file).is_file()
    calibration = read_calibration(matched)
    assert calibration.pair("text", "image").scorer == "matcher"
    assert calibration.pair("audio", "image").scorer == "transcript"
    assert calibration.pair("text", "audio").scorer == "cosine"
    assert calibration.premise is not None and calibration.premise.scorer == "matcher"
    checker = ConsistencyChecker.load(matched)
    row = next(
        r for r in map(json.loads, (tiny_world / "scenes.jsonl").open()) if r["split"] == "val"
    )
    image = str(tiny_world / row["image"])
    audio = str(tiny_world / row["caption_audio"])
    result = checker.check({"text": row["caption"], "image": image, "audio": audio})
    pairs = {(p.a, p.b): p for p in result.pairs}
    text_image = pairs["text", "image"]
    assert text_image.scorer == "matcher"
    # the score blends the cosine similarity with the matcher's logit as calibrated
    calibrated = calibration.pair("text", "image")
    logit = checker.match([row["caption"]], image)[0]
    blend = float(calibrated.score(text_image.similarity, logit))
    assert text_image.score == pytest.approx(blend, abs=1e-5)
    assert calibrated.mix[1] > 0
    assert text_image.probability == pytest.approx(float(calibrated.platt.probability(blend)))
    spoken = pairs["image", "audio"]
    assert spoken.scorer == "transcript" and spoken.heard  # the recogniser heard words
    assert spoken.to_dict()["heard"] == spoken.heard
    premises = checker.text_image([row["caption"], "a"], image)
    assert len(premises) == 2 and all(0 < p < 1 for p, _ in premises)


def test_the_speech_prompt_uses_every_word_in_few_whole_sentences() -> None:
    texts = [
        "a red circle.",
        "a red circle",
        "a red circle above a blue square",
        "there are two shapes: a blue square and a red star",
        "a green triangle",
        "a very long sentence that repeats a red circle and a blue square with nothing new",
    ]
    prompt = speech_prompt(texts)
    assert prompt is not None and prompt.endswith(".")
    sentences = prompt.rstrip(".").split(". ")
    assert all(s in [t.rstrip(".") for t in texts] for s in sentences)  # whole sentences
    assert len(sentences) == len(set(sentences))
    words = {w for t in texts for w in t.replace(":", "").replace(".", "").split()}
    assert set(prompt.replace(":", "").replace(".", "").split()) == words
    assert (
        sentences[0]
        == "a very long sentence that repeats a red circle and a blue square with nothing new"
    )
    # a limit too small for the longest sentence takes shorter ones that still add words
    short = speech_prompt(texts, limit=14)
    assert short is not None and len(short.split()) <= 14 and "triangle" in short
    assert speech_prompt([]) is None and speech_prompt(["  "]) is None


def test_the_checker_prompts_the_recogniser_with_its_training_sentences(
    matched: Path, tiny_world: Path
) -> None:
    rows = [json.loads(line) for line in (tiny_world / "scenes.jsonl").open()]
    train = {r["caption"].rstrip(".") for r in rows if r["split"] == "train"}
    prompt = ConsistencyChecker.load(matched).speech_prompt
    assert prompt is not None
    assert set(prompt.rstrip(".").split(". ")) <= train


def test_a_calibration_without_its_matcher_is_refused(matched: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(matched, folder)
    (folder / MATCHER_FOLDER.weights_file).unlink()
    with pytest.raises(ConfigError, match="matcher"):
        load_matcher(folder)
    (folder / MATCHER_FOLDER.config_file).unlink()
    with pytest.raises(NotCalibratedError, match="matcher"):
        ConsistencyChecker.load(folder)


def test_route_and_command_line_report_the_scorer(matched: Path, tiny_world: Path) -> None:
    from fastapi.testclient import TestClient

    from omnifuse.serve import ServeConfig, create_app

    rows = [r for r in map(json.loads, (tiny_world / "scenes.jsonl").open()) if r["split"] == "val"]
    image = tiny_world / rows[0]["image"]
    uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    with TestClient(
        create_app(ServeConfig(align_dir=matched)), base_url="http://127.0.0.1"
    ) as client:
        answer = client.post("/v1/consistency", json={"text": rows[0]["caption"], "image": uri})
        assert answer.status_code == 200, answer.text
        (pair,) = answer.json()["pairs"]
        assert pair["scorer"] == "matcher" and np.isfinite(pair["score"])
        empty = client.post("/v1/consistency", json={"text": "", "image": uri})
        assert empty.status_code in (400, 422)
    shown = runner.invoke(
        app,
        [
            "consistency",
            "--align",
            str(matched),
            "--text",
            rows[0]["caption"],
            "--image",
            str(image),
        ],
    )
    assert shown.exit_code in (0, 1) and "matcher" in shown.output


def test_command_line_adds_a_matcher_to_an_aligned_model(
    tiny_run: AlignResult, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_run.folder, folder)
    args = ["consistency", "match", "--align", str(folder), "--epochs", "2", "--per-scene", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "matcher: 2 epochs" in result.output and "val AUROC against edits" in result.output
    assert has_matcher(folder) and read_calibration(folder).pair("text", "image").scorer in (
        "matcher",
        "cosine",  # a matcher that adds nothing to the cosine is calibrated out
    )
    missing = runner.invoke(app, ["consistency", "match", "--align", str(tmp_path / "none")])
    assert missing.exit_code != 0


def test_a_matcher_trains_on_another_world_set_and_calibrates_on_its_own(
    tiny_run: AlignResult,
    tiny_world: Path,
    built_dataset: Callable[..., Path],
    tmp_path: Path,
) -> None:
    other = built_dataset("world", seed=1, size=24, video_clips=0, image_size=48)
    folder = tmp_path / "model"
    shutil.copytree(tiny_run.folder, folder)
    args = ["consistency", "match", "--align", str(folder), "--epochs", "2", "--per-scene", "4"]
    result = runner.invoke(app, [*args, "--scenes", str(other / "scenes.jsonl")])
    assert result.exit_code == 0, result.output
    trained_on = MATCHER_FOLDER.read_metrics(folder)["data"]
    assert Path(trained_on["manifest"]) == other / "scenes.jsonl"
    assert trained_on["train"] > 0 and trained_on["val"] > 0
    calibrated_on = json.loads((folder / "consistency.json").read_text())["source"]["manifest"]
    assert Path(calibrated_on).resolve() == (tiny_world / "scenes.jsonl").resolve()
    missing = runner.invoke(app, [*args, "--scenes", str(tmp_path / "none.jsonl")])
    assert isinstance(missing.exception, ConfigError) and "no such manifest" in str(
        missing.exception
    )


def test_a_fine_grid_matcher_reads_the_image_on_its_own_finer_grid(
    tiny_world: Path, tmp_path: Path
) -> None:
    config = effnet_config(tiny_world, tmp_path / "cache", epochs=3)
    folder = train_alignment(AlignConfig.from_dict(config), tmp_path / "model").folder
    add_matcher(folder, dataclasses.replace(SMALL, grid="fine", epochs=2))
    matcher = load_matcher(folder)
    assert matcher.config.image_encoder is not None
    assert matcher.config.image_encoder["grid"] == "fine" and matcher.config.image_dim == 1392
    row = next(r for r in map(json.loads, (tiny_world / "scenes.jsonl").open()))
    image = str(tiny_world / row["image"])
    model = load_aligned(folder)
    (tokens,) = image_features(matcher.config, model, [image])
    assert tokens.shape == (4 * 4, 1392)  # 64 px: a 2×2 final grid read at 4×4
    checker = ConsistencyChecker.load(folder)
    assert np.isfinite(checker.match([row["caption"], "a green star"], image)).all()


def test_a_fine_grid_needs_an_efficientnet_image_encoder(
    tiny_run: AlignResult, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_run.folder, folder)
    with pytest.raises(ConfigError, match="effnet-lite0"):
        add_matcher(folder, dataclasses.replace(SMALL, grid="fine"))
    with pytest.raises(ConfigError, match="grid"):
        MatchTraining(grid="coarse")
