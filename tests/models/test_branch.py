from __future__ import annotations

import dataclasses

import pytest
import torch

from bell_edge.config import ConfigError, ModelConfig
from bell_edge.models import Branch, branch_channels

SMALL = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 2), kernel_size=5)


def test_default_channels_are_stem_then_two_per_block() -> None:
    default = ModelConfig()
    assert branch_channels(default) == (16, 16, 16, 32, 32, 64, 64)
    assert branch_channels(SMALL) == (8, 8, 8, 16, 16, 16, 16)


def test_explicit_channels_override_stage_widths() -> None:
    cfg = dataclasses.replace(SMALL, channels=(4, 3, 5, 6, 7, 2, 7))
    assert branch_channels(cfg) == (4, 3, 5, 6, 7, 2, 7)
    assert Branch(cfg).widths() == (4, 3, 5, 6, 7, 2, 7)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ((8, 8, 8), "expected 7"),
        ((8, 8, 8, 16, 16, 16, 12), "identity skip"),
        ((8, 0, 8, 16, 16, 16, 16), ">= 1"),
    ],
)
def test_inconsistent_channels_raise(channels: tuple[int, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):  # one line, exit 2 from the CLI
        branch_channels(dataclasses.replace(SMALL, channels=channels))


def test_a_config_that_cannot_form_a_branch_is_refused_when_made() -> None:
    with pytest.raises(ConfigError, match="must be as long"):
        dataclasses.replace(SMALL, blocks_per_stage=(1,))
    with pytest.raises(ConfigError, match="channels = \\[8, 0, 8\\]: must be whole numbers >= 1"):
        dataclasses.replace(SMALL, channels=(8, 0, 8))
    with pytest.raises(ConfigError, match="dropout = 1.0: must be in \\[0, 1\\)"):
        dataclasses.replace(SMALL, dropout=1.0)


def test_branch_keeps_pooled_axis_and_downsamples_per_stage() -> None:
    branch = Branch(SMALL)
    lengths = []
    branch.blocks.register_forward_hook(lambda m, i, o: lengths.append(o.shape[-1]))
    out = branch(torch.randn(3, 1, 256))
    assert out.shape == (3, 16, 1)
    assert lengths == [256 // 2 // 2 // 2]  # stem, then the first block of each of 2 stages


def test_grouped_branch_stacks_lead_widths() -> None:
    assert Branch(SMALL, groups=12)(torch.randn(2, 12, 64)).shape == (2, 12 * 16, 1)
    assert Branch(SMALL, groups=12).widths() == branch_channels(SMALL)
