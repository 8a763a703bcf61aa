"""BootstrapLearner: online network + predictor against an EMA target, for BELL or BYOL."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bell_edge.config import ModelConfig
from bell_edge.models.encoder import MultiLeadEncoder
from bell_edge.models.heads import MLPHead
from bell_edge.ssl.bell import bell_loss
from bell_edge.ssl.byol import byol_loss
from bell_edge.ssl.momentum import ema_update

METHODS = ("bell", "byol")


class ProjectedEncoder(nn.Module):
    """Encoder followed by a projector.

    per_lead=True (BELL): each lead latent is projected on its own, `(B, L, K)`; the projector
    sees `(B*L, D)`, so its BatchNorm pools all leads (a missing lead's zero latent included).
    per_lead=False (BYOL): the concatenated latents `(B, L*D)` are projected to `(B, K)`.
    """

    def __init__(self, cfg: ModelConfig, per_lead: bool) -> None:
        super().__init__()
        self.encoder = MultiLeadEncoder(cfg)
        self.per_lead = per_lead
        in_dim = self.encoder.latent_dim * (1 if per_lead else cfg.n_leads)
        self.projector = MLPHead(in_dim, cfg.proj_hidden, cfg.proj_dim)

    def forward(self, x: Tensor, lead_mask: Tensor | None = None) -> Tensor:
        if not self.per_lead:
            return self.projector(self.encoder.features(x, lead_mask))
        latents = self.encoder(x, lead_mask)
        return self.projector(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])


class BootstrapLearner(nn.Module):
    """BELL (per-lead bootstrap, intra + inter lead) or BYOL (one latent per ECG).

    `forward(view1, view2, lead_mask)` returns `loss` (symmetrized over the views), `intra`,
    `inter` and `collapse_std`. For BYOL `intra` and `inter` both equal the (detached) loss,
    which keeps logged metrics finite. `collapse_std` is the std over the batch of the
    normalized target projections, averaged over dims: about 1/sqrt(proj_dim) when healthy,
    0 when collapsed. Losses are computed in float32, so bf16 autocast is safe.

    The target (`self.target`) is a frozen copy of the online encoder + projector, moved by
    `update_target(m)` after each optimizer step; its BatchNorm running statistics (momentum 0)
    change only through that EMA. Under DDP call `ddp.module.update_target(m)`; the target needs
    no gradient sync because every rank applies the same EMA to the same synced weights.

    `lead_conditioned` (BELL only): the predictor is told which lead it predicts. A learned
    embedding of target lead j is added to lead i's projection, so one predictor gives a
    separate prediction for every (i, j) pair instead of one prediction for all j.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        method: str = "bell",
        gamma: float = 0.8,
        lead_conditioned: bool = False,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.method = method
        self.gamma = gamma
        self.online = ProjectedEncoder(model_cfg, per_lead=method == "bell")
        self.predictor = MLPHead(model_cfg.proj_dim, model_cfg.proj_hidden, model_cfg.proj_dim)
        if lead_conditioned and method != "bell":
            raise ValueError("lead_conditioned needs method 'bell' (BYOL has one latent per ECG)")
        self.lead_embedding = None
        if lead_conditioned:  # zero at start: training begins as the unconditioned predictor
            self.lead_embedding = nn.Parameter(torch.zeros(model_cfg.n_leads, model_cfg.proj_dim))
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        for m in self.target.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # normalize with batch stats; running stats move only by EMA

    def _predict(self, x: Tensor, lead_mask: Tensor | None) -> Tensor:
        q = self.online(x, lead_mask)
        if q.ndim == 2:
            return self.predictor(q)
        if self.lead_embedding is not None:  # (B, L, K) -> (B, L, L, K): lead i predicts lead j
            q = q[:, :, None, :] + self.lead_embedding[None, None]
        return self.predictor(q.flatten(0, -2)).view_as(q)

    def forward(
        self,
        view1: Tensor,
        view2: Tensor,
        lead_mask: Tensor | None = None,
        online_masks: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """`online_masks`: the leads the online network sees of each view (a subset of
        `lead_mask`; the encoder zeroes the others); the target sees every lead of `lead_mask`."""
        m1, m2 = online_masks or (lead_mask, lead_mask)
        p1, p2 = self._predict(view1, m1), self._predict(view2, m2)
        with torch.no_grad():
            z1, z2 = self.target(view1, lead_mask), self.target(view2, lead_mask)
        if self.method == "byol":
            loss = (byol_loss(p1, z2) + byol_loss(p2, z1)) / 2
            intra = inter = loss.detach()
        else:
            a = bell_loss(p1, z2, m1, self.gamma, lead_mask)
            b = bell_loss(p2, z1, m2, self.gamma, lead_mask)
            loss = (a[0] + b[0]) / 2
            intra, inter = (a[1] + b[1]).detach() / 2, (a[2] + b[2]).detach() / 2
        return {
            "loss": loss,
            "intra": intra,
            "inter": inter,
            "collapse_std": collapse_std(z1, lead_mask if self.method == "bell" else None),
        }

    @torch.no_grad()
    def update_target(self, m: float) -> None:
        """EMA step of the target toward the online encoder + projector (momentum m)."""
        ema_update(self.online, self.target, m)

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The online encoder's weights: what fine-tuning loads into `ECGClassifier.encoder`."""
        return self.online.encoder.state_dict()


@torch.no_grad()
def collapse_std(z: Tensor, lead_mask: Tensor | None = None) -> Tensor:
    """Std over the batch of L2-normalized z, per lead for `(B, L, K)`, averaged over leads and K.

    Missing leads (mask False) are left out of their lead's statistics.
    """
    z = F.normalize(z.float(), dim=-1)
    if z.ndim == 2:
        z = z[:, None]
    w = torch.ones_like(z[..., :1]) if lead_mask is None else lead_mask[..., None].to(z)
    n = w.sum(dim=0)
    mean = (z * w).sum(dim=0) / n.clamp(min=1)
    var = ((z - mean) ** 2 * w).sum(dim=0) / (n - 1).clamp(min=1)
    return var.sqrt().mean()
