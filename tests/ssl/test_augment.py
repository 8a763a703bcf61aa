from __future__ import annotations

import dataclasses

import pytest
import torch

from bell_edge.config import AugmentConfig
from bell_edge.ssl import Augmenter

OFF = AugmentConfig(
    crop_min=1.0, timeout_max=0.0, noise_std=0.0, scale_range=(1.0, 1.0), wander_amp=0.0
)
T = 500


def only(**kw: object) -> AugmentConfig:
    return dataclasses.replace(OFF, **kw)


def test_deterministic_under_a_seed_and_shape_preserving() -> None:
    x = torch.randn(4, 12, T)
    a = Augmenter(AugmentConfig(), seed=3)(x)
    b = Augmenter(AugmentConfig(), seed=3)(x)
    c = Augmenter(AugmentConfig(), seed=4)(x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    aug = Augmenter(AugmentConfig())
    torch.testing.assert_close(aug(x, generator=g1), aug(x, generator=g2))
    stream = Augmenter(AugmentConfig(), seed=3)
    assert not torch.allclose(stream(x), stream(x))  # its generator advances between views


def test_all_off_is_identity() -> None:
    x = torch.randn(2, 12, T)
    torch.testing.assert_close(Augmenter(OFF, seed=0)(x), x)


@pytest.mark.parametrize("per_lead", [True, False])
def test_crop_is_shared_across_leads_and_resamples_linearly(per_lead: bool) -> None:
    ramp = torch.arange(T, dtype=torch.float32).expand(8, 12, T)
    out = Augmenter(only(crop_min=0.5, per_lead=per_lead), seed=0)(ramp)
    assert (out == out[:, :1]).all()  # every lead gets the same crop: still time-aligned
    slope = out[:, 0].diff(dim=-1)
    torch.testing.assert_close(slope, slope[:, :1].expand_as(slope), atol=1e-3, rtol=0)
    assert ((slope >= 0.5 - 1e-4) & (slope <= 1 + 1e-4)).all()  # kept 50..100% of the window
    assert (out >= 0).all() and (out <= T - 1).all()
    assert slope.std() > 0  # crop fraction differs across records


@pytest.mark.parametrize("per_lead", [True, False])
def test_scale_is_drawn_per_lead_or_per_record(per_lead: bool) -> None:
    x = torch.rand(6, 12, T) + 1
    ratio = Augmenter(only(scale_range=(0.8, 1.2), per_lead=per_lead), seed=0)(x) / x
    per_lead_scale = ratio[..., 0]
    torch.testing.assert_close(ratio, per_lead_scale[..., None].expand_as(ratio))
    assert ((per_lead_scale >= 0.8) & (per_lead_scale <= 1.2)).all()
    varies = (per_lead_scale.std(dim=1) > 0).all()
    assert varies == per_lead


def test_timeout_zeroes_one_short_span() -> None:
    x = torch.ones(64, 12, T)
    zero = Augmenter(only(timeout_max=0.2), seed=0)(x) == 0
    spans = zero.sum(-1)
    assert (spans <= 0.2 * T + 1).all() and spans.sum() > 0
    starts = (zero[..., 1:] & ~zero[..., :-1]).sum(-1) + zero[..., 0]
    assert (starts <= 1).all()  # contiguous


def test_wander_is_slow_and_bounded() -> None:
    x = torch.zeros(32, 12, T)
    out = Augmenter(only(wander_amp=0.1, wander_max_hz=0.5), fs=100.0, seed=0)(x)
    assert out.abs().max() <= 0.1 + 1e-6 and out.abs().max() > 0.01
    assert out.diff(dim=-1).abs().max() <= 2 * torch.pi * 0.5 * 0.1 / 100 + 1e-6


def test_noise_level_is_bounded() -> None:
    x = torch.zeros(16, 12, 4000)
    out = Augmenter(only(noise_std=0.05), seed=0)(x)
    assert 0 < out.std(dim=-1).max() < 0.06
