"""Per-lead 1-D ResNet branches, the multi-lead encoder, heads and the classifier."""

from bell_edge.models.branch import Branch, branch_channels
from bell_edge.models.encoder import MultiLeadEncoder, convert_layout, count_macs, count_params
from bell_edge.models.heads import ECGClassifier, MLPHead

__all__ = [
    "Branch",
    "ECGClassifier",
    "MLPHead",
    "MultiLeadEncoder",
    "branch_channels",
    "convert_layout",
    "count_macs",
    "count_params",
]
