"""BELL's loss: bootstrap each lead's latent from the same lead (intra) and the others (inter).

For online predictions p and target projections z of shape `(B, L, K)`, the pair loss is
`2 - 2 cos(p_i, z_j)`. All L x L pairs come from one batched cosine matrix. A lead-conditioned
predictor gives p of shape `(B, L, L, K)` instead, `p[:, i, j]` being lead i's prediction of
lead j's latent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bell_loss(
    p: Tensor,
    z: Tensor,
    lead_mask: Tensor | None = None,
    gamma: float = 0.8,
    target_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """`(loss, intra, inter)` with `loss = gamma * intra + (1 - gamma) * inter`.

    intra: per sample, the mean over leads i present in both p and z of pair(p_i, z_i).
    inter: per sample, the mean over ordered pairs i != j, i present in p and j in z, of
    pair(p_i, z_j). Each is then averaged over the samples where it is defined; with no such
    sample the term is 0. Missing leads (mask False) contribute nothing. `lead_mask` marks the
    leads of p, `target_mask` (default: the same) those of z, so an online view with fewer leads
    predicts the target latents of the leads it lacks. p and z are L2-normalized here, in
    float32; z is expected detached. Symmetrizing over the two views is the caller's job.
    """
    per_target = p.ndim == 4 and p.shape[:2] + p.shape[3:] == z.shape and p.shape[1] == p.shape[2]
    if z.ndim != 3 or not (p.shape == z.shape or per_target):
        raise ValueError(
            f"p must be (B, L, K) or (B, L, L, K) and z (B, L, K), got {tuple(p.shape)}, "
            f"{tuple(z.shape)}"
        )
    p = F.normalize(p.float(), dim=-1)
    z = F.normalize(z.float(), dim=-1)
    pair = 2 - 2 * torch.einsum("bijk,bjk->bij" if per_target else "bik,bjk->bij", p, z)
    batch, leads, _ = pair.shape
    present = _present(lead_mask, batch, leads, p.device)
    present_z = present if target_mask is None else _present(target_mask, batch, leads, p.device)
    both = present[:, :, None] * present_z[:, None, :]
    eye = torch.eye(leads, device=p.device)

    intra = _masked_mean(pair.diagonal(dim1=1, dim2=2), both.diagonal(dim1=1, dim2=2))
    inter = _masked_mean(pair.flatten(1), (both * (1 - eye)).flatten(1))
    return gamma * intra + (1 - gamma) * inter, intra, inter


def _present(mask: Tensor | None, batch: int, leads: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(batch, leads, device=device)
    return mask.to(device=device, dtype=torch.float32)


def _masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Per-row weighted mean of `(B, N)` values, then the mean over rows with any weight."""
    count = weights.sum(dim=1)
    per_row = (values * weights).sum(dim=1) / count.clamp(min=1)
    valid = (count > 0).float()
    return (per_row * valid).sum() / valid.sum().clamp(min=1)
