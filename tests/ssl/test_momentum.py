from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bell_edge.ssl import cosine_momentum, ema_update


def test_cosine_momentum_ends_and_midpoint() -> None:
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, base=0.9, final=1.0) == pytest.approx(0.95)
    assert cosine_momentum(500, 100) == pytest.approx(1.0)
    values = [cosine_momentum(s, 100) for s in range(101)]
    assert values == sorted(values)


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_ema_interpolates_parameters_and_buffers() -> None:
    online = net()
    target = copy.deepcopy(online)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    for p in online.parameters():
        p.data.add_(1.0)
    online.train()(torch.randn(16, 4) * 3 + 2)  # moves running_mean/var, counts a batch
    ema_update(online, target, 0.75)
    now, src = target.state_dict(), online.state_dict()
    for key in ("0.weight", "1.running_mean", "1.running_var", "3.bias"):
        torch.testing.assert_close(now[key], 0.75 * before[key] + 0.25 * src[key])
        assert not torch.equal(now[key], before[key])
    assert now["1.num_batches_tracked"] == 1


def test_ema_extremes() -> None:
    online, target = net(), net()
    frozen = copy.deepcopy(target.state_dict())
    ema_update(online, target, 1.0)
    for key, value in target.state_dict().items():
        torch.testing.assert_close(value, frozen[key])
    ema_update(online, target, 0.0)
    for key, value in target.state_dict().items():
        torch.testing.assert_close(value, online.state_dict()[key])
