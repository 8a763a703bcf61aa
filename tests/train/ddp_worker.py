"""One rank of the DDP gradient test (run by torch.distributed.run with 2 processes, gloo)."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bell_edge.config import ModelConfig
from bell_edge.ssl.learner import BootstrapLearner


def main(batch_file: str, out_file: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    cfg = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1),
                      proj_hidden=32, proj_dim=16)  # fmt: skip
    learner = BootstrapLearner(cfg, "bell", 0.8)
    model = DistributedDataParallel(learner)
    view1, view2, mask = torch.load(batch_file, weights_only=True)
    half = view1.shape[0] // world
    part = slice(rank * half, (rank + 1) * half)
    model(view1[part], view2[part], mask[part])["loss"].backward()
    if rank == 0:
        grads = {n: p.grad for n, p in learner.named_parameters() if p.grad is not None}
        torch.save(grads, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
