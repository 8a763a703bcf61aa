"""GPU paths: bf16 autocast pretraining steps on CUDA (skipped where there is no GPU)."""

from __future__ import annotations

import pytest
import torch

from bell_edge.config import PretrainConfig, load_toml, replace
from bell_edge.train.pretrain import pretrain

pytestmark = pytest.mark.gpu


def test_bf16_pretraining_on_cuda(tmp_path, tiny_config, ptbxl_cache):
    cfg = replace(load_toml(PretrainConfig, tiny_config), device="cuda", epochs=1)
    summary = pretrain(ptbxl_cache.root, tmp_path / "run", cfg, progress=False, max_steps=20)
    assert summary["device"].startswith("cuda")
    assert summary["steps"] == 20 and torch.isfinite(torch.tensor(summary["loss"]))
