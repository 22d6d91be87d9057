"""The text-to-image generator on a tiny config: its loss falls, sampling is deterministic for a
seed with either sampler, guidance from one doubled batch equals two separate passes, Heun is
second order, a saved folder generates the same pixels, and bad prompts or settings are typed
errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.errors import EmptyInputError, InputError, InputTooLargeError, InvalidValueError
from omnifuse.generate import (
    GenerateConfig,
    GeneratorConfig,
    TextToImage,
    UNetConfig,
    load_generator,
    train_generator,
)
from omnifuse.generate.flow import Sampler, sample
from omnifuse.generate.train import GenerateTrain, GeneratorObjective
from omnifuse.generate.unet import SpatialTransformer

COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220), "green": (40, 180, 60)}
TINY_TEXT: dict[str, Any] = {"name": "transformer-text", "dim": 32, "layers": 1, "heads": 2}
TINY_UNET: dict[str, Any] = {
    "image_size": 16,
    "widths": [16, 32],
    "attention_levels": [1],
    "heads": 2,
}


def _squares(root: Path) -> Path:
    """Squares of three colours at two places, with captions that say which."""
    rows = []
    for i, (name, rgb) in enumerate([*COLOURS.items()] * 4):
        pixels = np.full((16, 16, 3), 245, np.uint8)
        left = i % 2 == 0
        pixels[5:11, 1:7] = rgb if left else pixels[5:11, 1:7]
        pixels[5:11, 9:15] = pixels[5:11, 9:15] if left else rgb
        path = root / "images" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        side = "left" if left else "right"
        split = "val" if i >= 10 else "train"
        rows.append(
            {
                "id": str(i),
                "split": split,
                "image": f"images/{i}.png",
                "caption": f"a {name} square on the {side}",
            }
        )
    manifest = root / "squares.jsonl"
    write_manifest(manifest, rows, ManifestSchema(modalities={"image": "image", "caption": "text"}))
    return manifest


def _config(root: Path, **train: object) -> GenerateConfig:
    return GenerateConfig.from_dict(
        {
            "data": {"manifest": str(_squares(root))},
            "model": {"text_encoder": TINY_TEXT, "unet": {**TINY_UNET, "context_dim": 32}},
            "train": {
                "epochs": 25,
                "batch_size": 10,
                "lr": 0.003,
                "grid_every": 20,
                "grid_prompts": 2,
                "grid_seeds": 2,
                "grid_steps": 3,
                "progress": False,
                **train,
            },
            "output": str(root / "generator"),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TextToImage, Path, list[float]]:
    root = tmp_path_factory.mktemp("gen")
    model, result = train_generator(_config(root))
    losses = [float(h["train_loss"]) for h in result.history]
    return model, root / "generator", losses


def test_the_loss_falls_and_grids_are_written(
    trained: tuple[TextToImage, Path, list[float]],
) -> None:
    _, folder, losses = trained
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses
    assert (folder / "samples" / "epoch-0020.png").is_file()
    assert (folder / "samples" / "final.png").is_file()
    assert (folder / "samples" / "final.txt").read_text().count("square") == 2


def test_sampling_is_deterministic_and_the_folder_reloads(
    trained: tuple[TextToImage, Path, list[float]],
) -> None:
    model, folder, _ = trained
    prompt = ["a red square on the left"]
    first = np.asarray(model.generate(prompt, steps=4, guidance=2.0, seed=7)[0])
    again = np.asarray(model.generate(prompt, steps=4, guidance=2.0, seed=7)[0])
    other = np.asarray(model.generate(prompt, steps=4, guidance=2.0, seed=8)[0])
    assert first.shape == (16, 16, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    reloaded = load_generator(folder)
    assert np.array_equal(
        np.asarray(reloaded.generate(prompt, steps=4, guidance=2.0, seed=7)[0]), first
    )


def test_heun_sampling_is_deterministic_per_seed_and_differs_from_euler(
    trained: tuple[TextToImage, Path, list[float]],
) -> None:
    model, folder, _ = trained
    prompt = ["a green square on the right"]

    def heun(seed: int) -> np.ndarray:
        return np.asarray(
            model.generate(prompt, steps=4, guidance=2.0, seed=seed, sampler="heun")[0]
        )

    first = heun(3)
    assert np.array_equal(first, heun(3)) and not np.array_equal(first, heun(4))
    euler = model.sample_pixels(prompt, steps=4, guidance=2.0, seed=3, sampler="euler")
    assert not torch.allclose(
        euler, model.sample_pixels(prompt, steps=4, guidance=2.0, seed=3, sampler="heun")
    )
    reloaded = load_generator(folder).generate(
        prompt, steps=4, guidance=2.0, seed=3, sampler="heun"
    )
    assert np.array_equal(np.asarray(reloaded[0]), first)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_guidance_in_one_doubled_batch_equals_two_passes(
    trained: tuple[TextToImage, Path, list[float]], sampler: Sampler
) -> None:
    """The prompted and empty-prompt velocities come from one UNet call on a doubled batch, and
    the images equal those of two separate calls per velocity (within float tolerance)."""
    model, _, _ = trained
    prompts = ["a red square on the left", "a blue square on the right", "a green square"]
    guidance, steps, seed = 3.0, 5, 11
    context, mask = model.encode_prompts(prompts)
    empty, empty_mask = model.drop_prompts(
        context, mask, torch.ones(len(prompts), dtype=torch.bool)
    )

    def two_passes(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        conditional = model.velocity(x, t, context, mask)
        unconditional = model.velocity(x, t, empty, empty_mask)
        return unconditional + guidance * (conditional - unconditional)

    reference = sample(
        two_passes, model.initial_noise(len(prompts), seed), steps=steps, sampler=sampler
    )
    sizes: list[int] = []
    handle = model.unet.register_forward_hook(lambda _m, args, _o: sizes.append(len(args[0])))
    try:
        batched = model.sample_pixels(
            prompts, steps=steps, guidance=guidance, seed=seed, sampler=sampler
        )
    finally:
        handle.remove()
    evaluations = steps if sampler == "euler" else 2 * steps - 1
    assert sizes == [2 * len(prompts)] * evaluations
    assert torch.allclose(batched, reference, atol=1e-5), (batched - reference).abs().max()


def test_heun_is_second_order_on_a_known_flow() -> None:
    """On dx/dt = x from t = 1 to 0 (exact x(0) = x(1)/e), Heun's error shrinks about 4× when
    the steps double and is far below Euler's, whose error only halves."""
    start = torch.full((1, 1, 2, 2), 0.9, dtype=torch.float64)
    exact = 0.9 / math.e

    def error(steps: int, sampler: Sampler) -> float:
        result = sample(lambda x, t: x, start, steps=steps, sampler=sampler)
        return float((result - exact).abs().max())

    assert 3.5 < error(10, "heun") / error(20, "heun") < 4.5
    assert 1.8 < error(10, "euler") / error(20, "euler") < 2.2
    assert error(10, "heun") < error(10, "euler") / 10


@pytest.mark.parametrize(
    ("prompts", "steps", "guidance", "error"),
    [
        ([""], 4, 2.0, EmptyInputError),
        (["   "], 4, 2.0, EmptyInputError),
        ([], 4, 2.0, EmptyInputError),
        (["x" * 5000], 4, 2.0, InputTooLargeError),
        (["a red square"], 0, 2.0, InvalidValueError),
        (["a red square"], 10_000, 2.0, InvalidValueError),
        (["a red square"], 4, math.nan, InvalidValueError),
        (["a red square"], 4, math.inf, InvalidValueError),
        (["a red square"], 4, -1.0, InvalidValueError),
    ],
)
def test_bad_prompts_and_settings_are_typed_errors(
    prompts: list[str], steps: int, guidance: float, error: type[InputError]
) -> None:
    model = TextToImage(
        GeneratorConfig(text_encoder=TINY_TEXT, unet=UNetConfig(**TINY_UNET, context_dim=32))
    )
    with pytest.raises(error):
        model.generate(prompts, steps=steps, guidance=guidance)


@pytest.mark.parametrize("sampler", ["rk4", "Heun", "", None, 2])
def test_an_unknown_sampler_is_a_typed_error(sampler: object) -> None:
    model = TextToImage(
        GeneratorConfig(text_encoder=TINY_TEXT, unet=UNetConfig(**TINY_UNET, context_dim=32))
    )
    with pytest.raises(InvalidValueError, match="sampler must be one of euler, heun"):
        model.generate(["a red square"], steps=2, sampler=sampler)  # type: ignore[arg-type]


def test_generate_image_command(
    trained: tuple[TextToImage, Path, list[float]], tmp_path: Path
) -> None:
    _, folder, _ = trained
    out = tmp_path / "square.png"
    args = ["generate", "image", "a blue square on the right", "--model", str(folder)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "3", "--scale", "4"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (64, 64)
    heun = tmp_path / "heun.png"
    result = CliRunner().invoke(app, [*args, "-o", str(heun), "--steps", "3", "--sampler", "heun"])
    assert result.exit_code == 0, result.output
    expected = load_generator(folder).generate(
        ["a blue square on the right"], steps=3, seed=0, sampler="heun"
    )[0]
    assert np.array_equal(np.asarray(Image.open(heun).convert("RGB")), np.asarray(expected))
    wrong = CliRunner().invoke(app, [*args, "--out", str(out), "--sampler", "rk4"])
    assert wrong.exit_code != 0 and isinstance(wrong.exception, InvalidValueError)
    bad = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "0"])
    assert bad.exit_code != 0 and isinstance(bad.exception, InvalidValueError)


def test_the_moving_average_follows_the_weights_and_survives_a_snapshot() -> None:
    model = TextToImage(
        GeneratorConfig.from_dict(
            {"text_encoder": TINY_TEXT, "unet": {**TINY_UNET, "context_dim": 32}}
        )
    )
    train = GenerateTrain(ema_decay=0.9)
    objective = GeneratorObjective(model, None, None, None, train, Path("unused"))  # type: ignore[arg-type]
    first = next(model.parameters())
    start = first.detach().clone()
    with torch.no_grad():
        first.add_(1.0)
    objective.after_step(1000)
    averaged = objective.averaged[0]
    assert torch.allclose(averaged, start + 0.1, atol=1e-6)
    snapshot = objective.weights()
    with objective.averaged_weights():
        assert torch.allclose(next(model.parameters()), averaged)
    assert torch.allclose(next(model.parameters()), start + 1.0)
    objective.after_step(1001)
    objective.load_weights(snapshot)
    assert torch.allclose(objective.averaged[0], start + 0.1, atol=1e-6)
    objective.use_averaged_weights()
    assert torch.allclose(next(model.parameters()), start + 0.1, atol=1e-6)


def test_under_cpu_autocast_attention_stays_fp32_and_a_bf16_run_learns(tmp_path: Path) -> None:
    unet = TextToImage(
        GeneratorConfig(text_encoder=TINY_TEXT, unet=UNetConfig(**{**TINY_UNET, "context_dim": 32}))
    ).unet
    attention = unet.down[1].attn
    assert isinstance(attention, SpatialTransformer)
    seen: dict[str, torch.dtype] = {}

    def record(name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            seen[name] = (output[0] if isinstance(output, tuple) else output).dtype

        return hook

    attention.self_attn.register_forward_hook(record("self"))
    attention.cross_attn.register_forward_hook(record("cross"))
    attention.ff.register_forward_hook(record("ff"))
    x, t = torch.randn(2, 3, 16, 16), torch.rand(2)
    context, mask = torch.randn(2, 4, 32), torch.ones(2, 4, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unet(x, t, context, mask).float().pow(2).mean().backward()
    assert seen == {"self": torch.float32, "cross": torch.float32, "ff": torch.bfloat16}
    assert all(torch.isfinite(p.grad).all() for p in unet.parameters() if p.grad is not None)

    _, result = train_generator(_config(tmp_path, bf16=True, grid_every=0))
    losses = [float(h["train_loss"]) for h in result.history]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("positions", [False, True])
def test_attention_positions_tell_places_apart(positions: bool) -> None:
    torch.manual_seed(0)
    block = SpatialTransformer(16, 8, 2, positions=positions).eval()
    flat = torch.ones(1, 16, 4, 4)  # every pixel holds the same thing
    context, mask = torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        out = block(flat, context, mask).flatten(2)[0]  # (C, HW)
    spread = float((out - out[:, :1]).abs().max())
    assert (spread > 1e-3) == positions, spread
