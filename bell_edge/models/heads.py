"""Projector/predictor MLP and the supervised classifier."""

from __future__ import annotations

from torch import Tensor, nn

from bell_edge.config import ModelConfig
from bell_edge.models.encoder import MultiLeadEncoder


class MLPHead(nn.Sequential):
    """Linear-BN-ReLU-Linear on `(N, in_dim)`, as BYOL's projector and predictor.

    Applied per lead, N is batch * leads: BatchNorm then pools statistics over all leads.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )


class ECGClassifier(nn.Module):
    """Multi-lead encoder, dropout and a linear layer over the concatenated lead latents.

    Returns multi-label logits `(B, n_classes)`. A pretrained encoder loads into `.encoder`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = MultiLeadEncoder(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.n_leads * self.encoder.latent_dim, cfg.n_classes)

    def forward(self, x: Tensor, lead_mask: Tensor | None = None) -> Tensor:
        return self.head(self.dropout(self.encoder.features(x, lead_mask)))
