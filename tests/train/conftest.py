"""A tiny pretraining config, so CPU tests run in seconds."""

from __future__ import annotations

import pytest

TINY_TOML = """
batch_size = 32
epochs = 1
checkpoint_every = 4
warmup_epochs = 0.2
[model]
stem_width = 8
stage_widths = [8, 16]
blocks_per_stage = [1, 1]
proj_hidden = 32
proj_dim = 16
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path
