"""Flow matching (rectified flow) for images: the training loss and an Euler sampler with
classifier-free guidance.

A noisy image at time ``t`` ∈ [0, 1] is the straight mix ``x_t = (1 − t)·x_0 + t·ε`` of a clean
image ``x_0`` (pixels in [−1, 1]) and Gaussian noise ``ε``; the network learns the velocity
``ε − x_0`` (Lipman et al. 2023; Liu et al. 2023). Training times are drawn logit-normally, which
weights the middle times where the task is hardest (Esser et al. 2024, "Scaling Rectified Flow
Transformers"). Sampling integrates from pure noise at ``t = 1`` to ``t = 0`` in ``steps`` Euler
steps; with ``guidance`` g the velocity is ``v_uncond + g·(v_cond − v_uncond)`` (Ho & Salimans
2022), the unconditional one computed with the model's learned empty prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(x_t, t) → velocity``: the model with its prompt already bound."""


def training_times(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal times in (0, 1): sigmoid of a standard normal draw."""
    return torch.sigmoid(torch.randn(count, generator=generator))


def noisy_images(
    clean: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_t`` and the velocity target ``ε − x_0`` for clean images at times ``t``."""
    times = t.view(-1, 1, 1, 1).to(clean.dtype)
    return (1.0 - times) * clean + times * noise, noise - clean


def flow_loss(
    velocity: Velocity, clean: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between the predicted and the true velocity."""
    x_t, target = noisy_images(clean, t, noise)
    return torch.mean((velocity(x_t, t) - target) ** 2)


@torch.no_grad()
def sample(
    conditional: Velocity,
    unconditional: Velocity | None,
    noise: torch.Tensor,
    *,
    steps: int,
    guidance: float,
) -> torch.Tensor:
    """Integrate from ``noise`` (t = 1) to an image (t = 0); pixels clipped to [−1, 1]."""
    x = noise
    times = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
    for i in range(steps):
        t = times[i].expand(x.shape[0])
        v = conditional(x, t)
        if unconditional is not None and guidance != 1.0:
            u = unconditional(x, t)
            v = u + guidance * (v - u)
        x = x + (times[i + 1] - times[i]) * v
    return x.clamp(-1.0, 1.0)
