"""The target network's exponential moving average and its cosine momentum schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's schedule: `base` at step 0 rising along a half cosine to `final` at `total_steps`."""
    if total_steps <= 0:
        return final
    progress = min(max(step, 0), total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """`target <- m * target + (1 - m) * online` for parameters and floating buffers.

    Floating buffers (BatchNorm running mean/var) are averaged like parameters; integer buffers
    (num_batches_tracked) are copied. Both modules must have the same structure. Under DDP pass
    the unwrapped modules (`ddp.module...`).
    """
    pairs = [
        *zip(online.parameters(), target.parameters(), strict=True),
        *zip(online.buffers(), target.buffers(), strict=True),
    ]
    for src, dst in pairs:
        if dst.is_floating_point():
            dst.lerp_(src.detach(), 1 - m)
        else:
            dst.copy_(src)
