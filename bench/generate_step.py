"""A generator training step in fp32 against bfloat16 autocast (``train.bf16``), side by side.

The recipe's UNet (``world-generate``) takes AdamW steps on one random batch of its training
shape (64 images, 14 prompt tokens), the flow loss as the generator's objective computes it;
the sides alternate after a warm-up step each. Three rows:

- **bf16 vs fp32**: what ``train.bf16: true`` buys on this CPU;
- **bf16 attention vs fp32 attention, both under bf16**: what keeping the UNet's attention in
  fp32 on the CPU (``unet.full_precision_attention``) buys; the other side lets autocast run the
  attention in bf16 too;
- the UNet's velocity on one batch from the same weights (its output layer re-initialised, as
  the zero start would hide any change) under each precision: the largest difference in units
  of the fp32 velocity's standard deviation.

    python bench/generate_step.py --threads 2 --rounds 8
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any

import torch

from benchkit import alternate, markdown_table
from omnifuse.generate import unet as unet_module
from omnifuse.generate.flow import flow_loss, training_times
from omnifuse.generate.model import TextToImage
from omnifuse.generate.train import read_generate_config

BATCH = 64
PROMPT_TOKENS = 14


def make_step(
    model: TextToImage, batch: dict[str, torch.Tensor], bf16: bool
) -> Callable[[], float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = flow_loss(
                lambda x, t: model.velocity(x, t, batch["context"], batch["mask"]),
                batch["clean"],
                batch["t"],
                batch["noise"],
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


@contextlib.contextmanager
def bf16_attention() -> Any:
    """Autocast runs the attention too (the guard replaced by a no-op) for the duration."""
    guard = unet_module.full_precision_attention
    unet_module.full_precision_attention = lambda device: contextlib.nullcontext()
    try:
        yield
    finally:
        unet_module.full_precision_attention = guard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = read_generate_config("world-generate")
    model = TextToImage(config.model)
    size, channels = config.model.unet.image_size, config.model.unet.channels
    batch = {
        "clean": torch.rand(BATCH, channels, size, size) * 2 - 1,
        "context": torch.randn(BATCH, PROMPT_TOKENS, config.model.unet.context_dim),
        "mask": torch.ones(BATCH, PROMPT_TOKENS, dtype=torch.bool),
        "t": training_times(BATCH, torch.Generator().manual_seed(0)),
        "noise": torch.randn(BATCH, channels, size, size),
    }
    fp32_step, bf16_step = make_step(model, batch, False), make_step(model, batch, True)
    fp32_s, bf16_s, _, _ = alternate(fp32_step, bf16_step, args.rounds)

    def bf16_everywhere() -> float:
        with bf16_attention():
            return bf16_step()

    guarded_s, unguarded_s, _, _ = alternate(bf16_step, bf16_everywhere, args.rounds)
    model.unet.conv_out.reset_parameters()  # the zero-initialised output would hide any change
    with torch.no_grad():
        velocities = {}
        for bf16 in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                velocities[bf16] = model.velocity(
                    batch["noise"], batch["t"], batch["context"], batch["mask"]
                ).float()
    drift = float((velocities[True] - velocities[False]).abs().max() / velocities[False].std())
    rows = [
        ["bf16 vs fp32", f"{bf16_s:.3f}", f"{fp32_s:.3f}", f"{fp32_s / bf16_s:.2f}×"],
        [
            "fp32 attention vs bf16 attention (both bf16)",
            f"{guarded_s:.3f}",
            f"{unguarded_s:.3f}",
            f"{unguarded_s / guarded_s:.2f}×",
        ],
    ]
    print(
        f"batch {BATCH}, {args.threads} threads, {args.rounds} rounds, "
        f"torch {torch.__version__}; median s/step"
    )
    print(markdown_table(["comparison", "s/step", "reference s/step", "speed-up"], rows, "lrrr"))
    print(f"bf16 velocity vs fp32, same weights: largest difference {drift:.4f} of its std")


if __name__ == "__main__":
    main()
