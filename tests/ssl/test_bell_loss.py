from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bell_edge.ssl import bell_loss, byol_loss


def pair(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return 2 - 2 * F.cosine_similarity(p, z, dim=0)


def reference(
    p: torch.Tensor, z: torch.Tensor, mask: torch.Tensor, gamma: float, z_mask=None
) -> tuple:
    """Slow double loop over samples and lead pairs (z_mask: the leads of z, default mask)."""
    intra_rows, inter_rows = [], []
    z_mask = mask if z_mask is None else z_mask
    for pb, zb, mb, zmb in zip(p, z, mask, z_mask, strict=True):
        leads = [i for i in range(len(mb)) if mb[i]]
        targets = [j for j in range(len(zmb)) if zmb[j]]
        if both := [i for i in leads if i in targets]:
            intra_rows.append(sum(pair(pb[i], zb[i]) for i in both) / len(both))
        pairs = [(i, j) for i in leads for j in targets if i != j]
        if pairs:
            inter_rows.append(sum(pair(pb[i], zb[j]) for i, j in pairs) / len(pairs))
    intra = sum(intra_rows) / len(intra_rows)
    inter = sum(inter_rows) / len(inter_rows)
    return gamma * intra + (1 - gamma) * inter, intra, inter


@pytest.mark.parametrize("masked", [False, True])
def test_matrix_form_equals_double_loop(masked: bool) -> None:
    torch.manual_seed(0)
    p, z = torch.randn(6, 12, 16), torch.randn(6, 12, 16)
    mask = torch.ones(6, 12, dtype=torch.bool)
    if masked:
        mask = torch.rand(6, 12) > 0.4
        mask[0] = False  # no lead: excluded from both terms
        mask[1] = False
        mask[1, 5] = True  # one lead: intra only
    got = bell_loss(p, z, mask if masked else None, gamma=0.7)
    for g, r in zip(got, reference(p, z, mask, 0.7), strict=True):
        torch.testing.assert_close(g, torch.as_tensor(r, dtype=torch.float32))


def test_a_target_mask_of_its_own_scores_predictions_of_leads_the_online_view_lacks() -> None:
    torch.manual_seed(0)
    p, z = torch.randn(6, 12, 16, requires_grad=True), torch.randn(6, 12, 16)
    online = torch.rand(6, 12) > 0.6
    online[0] = False  # an online view with no lead: excluded from both terms
    online[1] = False
    online[1, 3] = True  # one online lead: it still predicts the other leads (inter)
    target = torch.rand(6, 12) > 0.2
    target[1] = True
    got = bell_loss(p, z, online, 0.6, target)
    for g, r in zip(got, reference(p, z, online, 0.6, target), strict=True):
        torch.testing.assert_close(g, torch.as_tensor(r, dtype=torch.float32))
    got[0].backward()
    assert (p.grad[~online] == 0).all() and (p.grad[1, 3] != 0).any()
    # Target latents of leads missing from the online view are scored (by the inter term).
    moved = z.clone()
    moved[1, 7] = torch.randn(16)
    assert not torch.allclose(bell_loss(p, moved, online, 0.6, target)[2], got[2])


def test_zero_when_predictions_match_targets() -> None:
    z = F.normalize(torch.randn(4, 12, 16), dim=-1)
    loss, intra, inter = bell_loss(z, z)
    assert intra.abs() < 1e-6 and inter > 0.5  # different leads still differ
    same = z[:, :1].expand(-1, 12, -1)
    assert all(t.abs() < 1e-6 for t in bell_loss(same, same))


def test_gamma_selects_the_terms() -> None:
    p, z = torch.randn(4, 12, 16), torch.randn(4, 12, 16)
    loss1, intra, _ = bell_loss(p, z, gamma=1.0)
    loss0, _, inter = bell_loss(p, z, gamma=0.0)
    torch.testing.assert_close(loss1, intra)
    torch.testing.assert_close(loss0, inter)


def test_masked_leads_contribute_nothing() -> None:
    p, z = torch.randn(4, 12, 16, requires_grad=True), torch.randn(4, 12, 16)
    mask = torch.rand(4, 12) > 0.3
    loss = bell_loss(p, z, mask)[0]
    loss.backward()
    assert (p.grad[~mask] == 0).all() and (p.grad[mask] != 0).any()
    noise = 10 * torch.randn_like(z) * ~mask[..., None]
    torch.testing.assert_close(bell_loss(p + noise, z - noise, mask)[0], loss)


def test_intra_alone_is_per_lead_byol_and_scale_free() -> None:
    p, z = torch.randn(5, 12, 16), torch.randn(5, 12, 16)
    per_lead = torch.stack([byol_loss(p[:, i], z[:, i]) for i in range(12)]).mean()
    torch.testing.assert_close(bell_loss(p, z, gamma=1.0)[0], per_lead)
    torch.testing.assert_close(bell_loss(3 * p, 0.1 * z)[0], bell_loss(p, z)[0])
    assert 0 <= bell_loss(p, z)[0] <= 4


def test_low_precision_inputs_give_float32() -> None:
    p, z = torch.randn(2, 12, 16), torch.randn(2, 12, 16)
    loss = bell_loss(p.bfloat16(), z.bfloat16())[0]
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, bell_loss(p, z)[0], atol=2e-2, rtol=0)


def test_per_target_predictions_score_each_pair_on_its_own() -> None:
    torch.manual_seed(0)
    z = torch.randn(3, 4, 8)
    broadcast = torch.randn(3, 4, 8)
    p = broadcast[:, :, None].expand(3, 4, 4, 8)  # the same prediction for every target lead
    for a, b in zip(bell_loss(p, z), bell_loss(broadcast, z), strict=True):
        torch.testing.assert_close(a, b)
    exact = z[:, None].expand(3, 4, 4, 8)  # lead i predicts lead j exactly, for every pair
    loss, intra, inter = bell_loss(exact, z)
    assert float(loss) < 1e-5 and float(inter) < 1e-5
    with pytest.raises(ValueError, match="B, L, L, K"):
        bell_loss(torch.randn(3, 4, 5, 8), z)
