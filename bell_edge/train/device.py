"""Device, precision and process-group handling for every training loop, in one place."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import torch
import torch.distributed as dist

from bell_edge.errors import InputError


@dataclasses.dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA; plain fp32 on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A seeded generator on `device`: the only kind that can draw random tensors there (a CPU
    generator raises for a CUDA tensor). Every training loop makes its generators here."""
    return torch.Generator(device=device).manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available here")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: use auto, cpu or cuda")
    return torch.device(name)


def setup(device_name: str) -> Runtime:
    """One process, or one rank of a `torchrun` job (WORLD_SIZE > 1): NCCL on GPU, gloo on CPU."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Runtime(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, rank, world_size, local_rank)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()
