from __future__ import annotations

import torch

from bell_edge.ssl import byol_loss


def test_byol_loss_is_two_minus_two_cosine() -> None:
    p = torch.randn(8, 16)
    z = torch.randn(8, 16)
    assert byol_loss(p, 5 * p).abs() < 1e-6
    torch.testing.assert_close(byol_loss(p, -p), torch.tensor(4.0))
    e = torch.eye(2)
    torch.testing.assert_close(byol_loss(e[:1], e[1:]), torch.tensor(2.0))
    expected = (2 - 2 * torch.nn.functional.cosine_similarity(p, z)).mean()
    torch.testing.assert_close(byol_loss(p, z), expected)
