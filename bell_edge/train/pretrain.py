"""BELL / BYOL pretraining: one loop for the CPU, a GPU (bf16) and several GPUs (torchrun + DDP).

A run directory holds `config.toml` (the full effective config), `metrics.jsonl` (one line per
step), `checkpoint.pt` (state dicts, written atomically every `checkpoint_every` steps and at
the end) and `encoder.pt` (the online encoder alone: what fine-tuning loads).

Resuming is exact: the batch order of each epoch comes from (seed, epoch) and the augmentation
of each step from (seed, step, rank), so a killed run resumed from its last checkpoint replays
the same steps as a run that was never stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from bell_edge.config import ModelConfig, PreprocessConfig, PretrainConfig, dump_toml, from_dict
from bell_edge.config import to_dict as config_dict
from bell_edge.data import cache as data_cache
from bell_edge.errors import InputError
from bell_edge.ssl.augment import Augmenter
from bell_edge.ssl.learner import BootstrapLearner
from bell_edge.ssl.momentum import cosine_momentum
from bell_edge.train import checkpoint
from bell_edge.train.dataset import CacheDataset
from bell_edge.train.device import Runtime, setup, teardown

ENCODER_FORMAT = "bell-edge-encoder"
CHECKPOINT, ENCODER, CONFIG, METRICS = "checkpoint.pt", "encoder.pt", "config.toml", "metrics.jsonl"


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_batches(n: int, epoch: int, cfg: PretrainConfig, runtime: Runtime) -> list[list[int]]:
    """This rank's batches of an epoch: a seeded shuffle split across ranks, no partial batch."""
    sampler = DistributedSampler(
        range(n), runtime.world_size, runtime.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    per_rank = cfg.batch_size // runtime.world_size
    return [order[i : i + per_rank] for i in range(0, len(order) - per_rank + 1, per_rank)]


def check_run_dir(out: Path, resume: bool, force: bool) -> None:
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise InputError(f"{out}: nothing to resume (no {CHECKPOINT})")
        return
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(
            f"{out}: exists and is not empty (use --resume to continue, --force to replace)"
        )


def pretrain(
    data: str | Path,
    out: str | Path,
    cfg: PretrainConfig,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) pretraining; returns the summary also written to `RUN/summary.json`."""
    out = Path(out)
    runtime = setup(cfg.device)
    try:
        return _pretrain(data, out, cfg, runtime, resume, force, progress, max_steps)
    finally:
        teardown(runtime)


def _pretrain(data, out, cfg, runtime, resume, force, progress, max_steps) -> dict[str, Any]:
    if cfg.method not in ("bell", "byol"):
        raise InputError(f"--method {cfg.method}: use bell or byol")
    if cfg.batch_size % runtime.world_size:
        raise InputError(f"--batch-size {cfg.batch_size} must divide by {runtime.world_size} ranks")
    if runtime.is_main:
        check_run_dir(out, resume, force)
    if runtime.distributed and runtime.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // runtime.world_size))
    checkpoint.seed_everything(cfg.seed)

    cache = _load_cache(data, cfg.preprocess, runtime)
    dataset = CacheDataset(cache, cache.rows(cfg.split))
    steps_per_epoch = len(dataset) // cfg.batch_size
    if steps_per_epoch == 0:
        raise InputError(
            f"{data}: {len(dataset)} windows in split {cfg.split}, fewer than one batch"
        )
    total = cfg.epochs * steps_per_epoch
    stop = min(total, max_steps) if max_steps else total
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))

    learner = BootstrapLearner(cfg.model, cfg.method, cfg.gamma).to(runtime.device)
    if cfg.sync_bn and runtime.device.type != "cuda":
        raise InputError("--sync-bn needs CUDA: torch's SyncBatchNorm has no CPU kernel")
    if runtime.distributed and cfg.sync_bn:
        learner = torch.nn.SyncBatchNorm.convert_sync_batchnorm(learner)
    params = [p for p in learner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    step = 0
    if resume:
        state = checkpoint.load(out / CHECKPOINT, runtime.device)
        learner.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step = int(state["step"])
    model: torch.nn.Module = learner
    if runtime.distributed:
        ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
        model = DistributedDataParallel(learner, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)

    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG).write_text(dump_toml(cfg))
        _truncate_metrics(out / METRICS, step)
    augment = Augmenter(cfg.augment, fs=cfg.preprocess.fs)
    bar = tqdm(
        total=stop, initial=step, desc=f"pretrain {cfg.method}", unit="step",
        disable=not (progress and runtime.is_main),
    )  # fmt: skip
    log = (out / METRICS).open("a") if runtime.is_main else None
    last: dict[str, float] = {}
    started = time.perf_counter()
    try:
        while step < stop:
            epoch, offset = divmod(step, steps_per_epoch)
            batches = epoch_batches(len(dataset), epoch, cfg, runtime)[offset:]
            loader = DataLoader(
                dataset, batch_sampler=batches, pin_memory=runtime.device.type == "cuda"
            )
            for x, mask, _ in loader:
                if step >= stop:
                    break
                tick = time.perf_counter()
                last = _train_step(model, learner, augment, optimizer, scheduler, x, mask, step,
                                   total, cfg, runtime)  # fmt: skip
                step += 1
                last["samples_per_s"] = cfg.batch_size / (time.perf_counter() - tick)
                if log:
                    log.write(json.dumps({"step": step, "epoch": epoch, **last}) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}", std=f"{last['collapse_std']:.3f}")
                if step % cfg.checkpoint_every == 0 or step == stop:
                    if log:
                        log.flush()
                    _save(out, learner, optimizer, scheduler, step, cfg, runtime)
    finally:
        bar.close()
        if log:
            log.close()
    summary = {
        "method": cfg.method,
        "steps": step,
        "total_steps": total,
        "epochs": cfg.epochs,
        "windows": len(dataset),
        "world_size": runtime.world_size,
        "device": str(runtime.device),
        "seconds": round(time.perf_counter() - started, 2),
        **{k: round(v, 6) for k, v in last.items()},
    }
    if runtime.is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _load_cache(data, preprocess: PreprocessConfig, runtime: Runtime):
    """Rank 0 prepares the cache; the other ranks wait, then open the same one."""
    if runtime.is_main:
        cache = data_cache.load(data, preprocess)
    if runtime.distributed:
        dist.barrier()
    if not runtime.is_main:
        cache = data_cache.load(data, preprocess, progress=False)
    return cache


def _train_step(model, learner, augment, optimizer, scheduler, x, mask, step, total, cfg, runtime):
    x = x.to(runtime.device, non_blocking=True)
    mask = mask.to(runtime.device, non_blocking=True)
    g = torch.Generator(device=runtime.device).manual_seed(
        (cfg.seed * 1_000_003 + step) * 64 + runtime.rank
    )
    view1, view2 = augment(x, g), augment(x, g)
    with runtime.autocast():
        result = model(view1, view2, mask)
    optimizer.zero_grad(set_to_none=True)
    result["loss"].backward()
    torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    momentum = cosine_momentum(step + 1, total, cfg.momentum_base)
    learner.update_target(momentum)
    metrics = {k: float(v.detach()) for k, v in result.items()}
    metrics["lr"] = scheduler.get_last_lr()[0]
    metrics["momentum"] = momentum
    return metrics


def _save(out, learner, optimizer, scheduler, step, cfg, runtime) -> None:
    if not runtime.is_main:
        return
    checkpoint.save(
        {
            "format": "bell-edge-pretrain",
            "model": learner.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": checkpoint.rng_state(),
            "step": step,
            "config": config_dict(cfg),
        },
        out / CHECKPOINT,
    )
    checkpoint.save(
        {
            "format": ENCODER_FORMAT,
            "method": cfg.method,
            "step": step,
            "model_config": config_dict(cfg.model),
            "preprocess": config_dict(cfg.preprocess),
            "encoder": learner.encoder_state_dict(),
        },
        out / ENCODER,
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines up to `step`: a killed run may have logged past its last checkpoint."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def load_encoder(path: str | Path) -> tuple[ModelConfig, PreprocessConfig, dict, str]:
    """Encoder weights from a pretraining run dir, its `encoder.pt`, or its `checkpoint.pt`.

    Returns (model config, preprocessing config, encoder state dict, method).
    """
    path = Path(path)
    if path.is_dir():
        path = path / ENCODER if (path / ENCODER).is_file() else path / CHECKPOINT
    state = checkpoint.load(path)
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt == ENCODER_FORMAT:
        model, pre, encoder = state["model_config"], state["preprocess"], state["encoder"]
        method = state["method"]
    elif fmt == "bell-edge-pretrain":
        cfg = from_dict(PretrainConfig, state["config"])
        prefix = "online.encoder."
        encoder = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        model, pre, method = config_dict(cfg.model), config_dict(cfg.preprocess), cfg.method
    else:
        raise InputError(f"{path}: not a bell-edge pretraining checkpoint")
    return from_dict(ModelConfig, model), from_dict(PreprocessConfig, pre), encoder, method
