"""DDP on 2 CPU processes (gloo) gives the gradients of one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from bell_edge.config import AugmentConfig, ModelConfig
from bell_edge.ssl.augment import Augmenter
from bell_edge.ssl.learner import BootstrapLearner


def test_two_rank_gradients_match_one_process(tmp_path, ptbxl_cache):
    x = torch.from_numpy(ptbxl_cache.windows[:16].copy())
    mask = torch.from_numpy(ptbxl_cache.lead_masks[:16].copy())
    augment = Augmenter(AugmentConfig(), seed=0)
    view1, view2 = augment(x), augment(x)
    torch.save((view1, view2, mask), tmp_path / "batch.pt")

    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29533", str(worker), str(tmp_path / "batch.pt"),
           str(tmp_path / "grads.pt")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    ddp = torch.load(tmp_path / "grads.pt", weights_only=True)

    # One process, same global batch. Without SyncBatchNorm (it has no CPU kernel) each rank
    # normalizes with its own half's statistics, so the reference does the same: the mean of
    # the two half-batch gradients is what DDP's all-reduce computes.
    torch.manual_seed(0)
    cfg = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1),
                      proj_hidden=32, proj_dim=16)  # fmt: skip
    learner = BootstrapLearner(cfg, "bell", 0.8)
    for part in (slice(0, 8), slice(8, 16)):
        learner(view1[part], view2[part], mask[part])["loss"].backward()
    reference = {n: p.grad / 2 for n, p in learner.named_parameters() if p.grad is not None}
    assert ddp.keys() == reference.keys() and len(ddp) > 10
    for name, grad in reference.items():
        torch.testing.assert_close(ddp[name], grad, rtol=1e-4, atol=1e-6, msg=name)
