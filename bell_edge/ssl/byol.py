"""BYOL's regression loss (Grill et al., 2020): one latent per ECG."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """Mean over the batch of `2 - 2 cos(p, z)` for `(B, K)` predictions and target projections.

    Computed in float32 (safe under autocast); z is expected detached.
    """
    p = F.normalize(p.float(), dim=-1)
    z = F.normalize(z.float(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()
