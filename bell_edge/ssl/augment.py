"""View augmentations for batched ECG `(B, L, T)`, vectorized over the batch, on any device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bell_edge.config import AugmentConfig


class Augmenter:
    """Random resized crop, amplitude scaling, baseline wander, Gaussian noise, time-out masking.

    The crop is always shared by all leads of a record so the leads stay time-aligned. With
    `cfg.per_lead` the other parameters are drawn per lead, else once per record. Each step is
    skipped when its config disables it (crop_min=1, scale_range=(1, 1), wander_amp=0,
    noise_std=0, timeout_max=0). Missing (zero) leads get noise too; the encoder's lead mask
    zeroes them again.

    Randomness comes from `generator=` at call time, else from a generator seeded with `seed`
    and created on the first input's device, else from torch's global RNG.
    """

    def __init__(self, cfg: AugmentConfig, fs: float = 100.0, seed: int | None = None) -> None:
        self.cfg = cfg
        self.fs = fs
        self.seed = seed
        self._generator: torch.Generator | None = None

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim != 3:
            raise ValueError(f"expected (batch, leads, samples), got {tuple(x.shape)}")
        g = generator if generator is not None else self._own_generator(x.device)
        cfg = self.cfg
        out = x.float()
        if cfg.crop_min < 1:
            out = self._crop(out, g)
        lo, hi = cfg.scale_range
        if (lo, hi) != (1, 1):
            out = out * (lo + (hi - lo) * self._draw(out, g))
        if cfg.wander_amp > 0:
            out = out + self._wander(out, g)
        if cfg.noise_std > 0:
            sigma = cfg.noise_std * self._draw(out, g)
            out = out + sigma * torch.randn(out.shape, generator=g, device=out.device)
        if cfg.timeout_max > 0:
            out = out * ~self._timeout(out, g)
        return out.to(x.dtype)

    def _own_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def _draw(self, x: Tensor, g: torch.Generator | None, per_lead: bool | None = None) -> Tensor:
        """Uniform [0, 1), (B, L, 1) per lead (default: cfg.per_lead) else (B, 1, 1)."""
        if per_lead is None:
            per_lead = self.cfg.per_lead
        shape = (x.shape[0], x.shape[1] if per_lead else 1, 1)
        return torch.rand(shape, generator=g, device=x.device)

    def _crop(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        """Keep a random crop_min..1 fraction of the window, linearly resampled to full length."""
        t = x.shape[-1]
        frac = self.cfg.crop_min + (1 - self.cfg.crop_min) * self._draw(x, g, per_lead=False)
        start = (1 - frac) * self._draw(x, g, per_lead=False)
        grid = torch.linspace(0, 1, t, device=x.device)
        pos = (start + frac * grid) * (t - 1)  # (B, 1, T) source positions, shared by leads
        left = pos.floor().clamp(0, t - 2)
        w = pos - left
        index = left.long().expand(-1, x.shape[1], -1)
        return x.gather(-1, index) * (1 - w) + x.gather(-1, index + 1) * w

    def _wander(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        """A sinusoid with random amplitude (< wander_amp), frequency (< wander_max_hz), phase."""
        amp = self.cfg.wander_amp * self._draw(x, g)
        freq = self.cfg.wander_max_hz * self._draw(x, g)
        phase = 2 * math.pi * self._draw(x, g)
        seconds = torch.arange(x.shape[-1], device=x.device) / self.fs
        return amp * torch.sin(2 * math.pi * freq * seconds + phase)

    def _timeout(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        """Bool mask of a random span of 0..timeout_max of the window (True = zeroed)."""
        t = x.shape[-1]
        length = self.cfg.timeout_max * self._draw(x, g)
        start = (1 - length) * self._draw(x, g)
        pos = torch.arange(t, device=x.device) / t
        return (pos >= start) & (pos < start + length)
