"""Self-supervised pretraining: BELL (per-lead bootstrap) and the BYOL baseline."""

from bell_edge.ssl.augment import Augmenter
from bell_edge.ssl.bell import bell_loss
from bell_edge.ssl.byol import byol_loss
from bell_edge.ssl.learner import BootstrapLearner, ProjectedEncoder, collapse_std
from bell_edge.ssl.momentum import cosine_momentum, ema_update

__all__ = [
    "Augmenter",
    "BootstrapLearner",
    "ProjectedEncoder",
    "bell_loss",
    "byol_loss",
    "collapse_std",
    "cosine_momentum",
    "ema_update",
]
