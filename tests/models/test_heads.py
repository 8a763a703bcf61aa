from __future__ import annotations

import dataclasses

import pytest
import torch

from bell_edge.config import ModelConfig
from bell_edge.models import ECGClassifier, MLPHead

SMALL = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1), kernel_size=5)


def test_mlp_head_normalizes_over_all_rows() -> None:
    head = MLPHead(16, 32, 8).train()
    x = torch.randn(4 * 12, 16)
    assert head(x).shape == (48, 8)
    hidden = head[1](head[0](x))
    torch.testing.assert_close(hidden.mean(0), torch.zeros(32), atol=1e-5, rtol=0)


def test_classifier_logits_and_encoder_attribute() -> None:
    model = ECGClassifier(SMALL).eval()
    x = torch.randn(3, 12, 256)
    assert model(x).shape == (3, 5)
    expected = model.head(model.encoder.features(x))
    torch.testing.assert_close(model(x), expected)
    mask = torch.ones(3, 12, dtype=torch.bool)
    torch.testing.assert_close(model(x, mask), expected)


def test_pruned_classifier_rebuilds_from_config() -> None:
    """torch-pruning traces the modules layout; the pruned widths go in `channels` and reload."""
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    cfg = SMALL
    model = ECGClassifier(cfg).eval()
    example = torch.randn(2, 12, 256)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.5,
        round_to=4,
        ignored_layers=[model.head],
    )
    pruner.step()
    widths = model.encoder.conv_widths()
    assert widths != ECGClassifier(cfg).encoder.conv_widths()
    rebuilt = ECGClassifier(dataclasses.replace(cfg, channels=widths)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt(example), model(example))
