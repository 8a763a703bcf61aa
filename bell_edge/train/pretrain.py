"""BELL / BYOL pretraining: one loop for the CPU, a GPU (bf16) and several GPUs (torchrun + DDP).

A run directory holds `config.toml` (the full effective config), `corpus.json` (every source
folder, its record and window counts and the sha256 of its cache index), `metrics.jsonl` (one
line per step, with how far the EMA target has moved from its init), `checkpoint.pt` (state
dicts, written atomically every `checkpoint_every` steps and at the end), `encoder.pt` (the
online encoder alone, BatchNorm statistics re-estimated on clean windows: what fine-tuning
loads) and `summary.json` (written last).

Resuming is exact: the batch order of each epoch comes from (seed, epoch) and the augmentation
of each step from (seed, step, rank), so a killed run resumed from its last checkpoint replays
the same steps as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from bell_edge.config import (
    ModelConfig,
    PreprocessConfig,
    PretrainConfig,
    changed_setting,
    dump_toml,
    from_dict,
)
from bell_edge.config import to_dict as config_dict
from bell_edge.errors import InputError
from bell_edge.files import appending, holds_files, write_json, write_text
from bell_edge.models.artifact import CHECKPOINT, MODEL, SUBSET
from bell_edge.models.encoder import convert_layout
from bell_edge.ssl.augment import Augmenter
from bell_edge.ssl.learner import BootstrapLearner
from bell_edge.ssl.momentum import cosine_momentum
from bell_edge.train import checkpoint
from bell_edge.train.corpus import Corpus, load_corpus
from bell_edge.train.device import Runtime, generator, setup, teardown
from bell_edge.train.lead_sets import kept_leads

ENCODER_FORMAT = "bell-edge-encoder"
ENCODER, CONFIG, METRICS = "encoder.pt", "config.toml", "metrics.jsonl"
RESUME_MAY_CHANGE = ("device", "compile", "checkpoint_every")  # how a run runs, not its recipe
CORPUS = "corpus.json"  # the sources: path, layout, records, windows, sha256 of each cache index
# Epoch presets: "long" is BYOL-family length (>= 100 epochs), sized to finish on 2 CPU cores in
# under 2.5 hours on the full corpus (benchmarks/results/pretrain_throughput.md).
BUDGET_EPOCHS = {"small": 10, "long": 100}
MOMENTUM_FLOOR = 0.9


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
    """`resume` continues from the checkpoint, or starts the run in a missing or empty folder,
    so one command both starts a background run and restarts it after a kill."""
    if resume and (out / CHECKPOINT).is_file():
        return
    if holds_files(out) and not force:
        if resume:
            raise InputError(f"{out}: not empty and no {CHECKPOINT} to resume (--force replaces)")
        raise InputError(
            f"{out}: exists and is not empty (use --resume to continue, --force to replace)"
        )


def pretrain(
    data: str | Path | list[str | Path],
    out: str | Path,
    cfg: PretrainConfig,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) pretraining on one folder or several; returns the summary also written
    to `RUN/summary.json`. With `max_steps` the run is that long: its schedules anneal by then."""
    out = Path(out)
    folders = list(data) if isinstance(data, list | tuple) else [data]
    runtime = setup(cfg.device)
    try:
        return _pretrain(folders, out, cfg, runtime, resume, force, progress, max_steps)
    finally:
        teardown(runtime)


def momentum_start(cfg: PretrainConfig, total_steps: int) -> float:
    """The EMA momentum at step 0: `momentum_base`, lowered so the target travels far enough,
    but not below 0.9 (BYOL's target must stay an average: at 0 it collapses, Grill et al.)."""
    wanted = 1 - 2 * cfg.target_travel / max(1, total_steps)
    return min(cfg.momentum_base, max(MOMENTUM_FLOOR, wanted))


def _pretrain(folders, out, cfg, runtime, resume, force, progress, max_steps) -> dict[str, Any]:
    if cfg.method not in ("bell", "byol"):
        raise InputError(f"--method {cfg.method}: use bell or byol")
    if not 0.0 <= cfg.online_lead_drop < 1.0:
        raise InputError(f"online_lead_drop {cfg.online_lead_drop}: use a share in [0, 1)")
    if cfg.batch_size % runtime.world_size:
        raise InputError(f"--batch-size {cfg.batch_size} must divide by {runtime.world_size} ranks")
    if runtime.is_main:
        check_run_dir(out, resume, force)
    if resume and not (out / CHECKPOINT).is_file():
        resume = False
        if runtime.is_main and progress:
            print(f"{out}: no {CHECKPOINT} yet, starting the run", file=sys.stderr)
    if runtime.distributed and runtime.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // runtime.world_size))
    checkpoint.seed_everything(cfg.seed)

    dataset = _load_corpus(folders, cfg, runtime)
    steps_per_epoch = len(dataset) // cfg.batch_size
    if steps_per_epoch == 0:
        raise InputError(
            f"{', '.join(map(str, folders))}: {len(dataset)} windows in split {cfg.split}, "
            "fewer than one batch"
        )
    total = cfg.epochs * steps_per_epoch
    if max_steps:
        total = min(total, max_steps)
    warmup = max(1, min(round(cfg.warmup_epochs * steps_per_epoch), total // 5))
    m0 = momentum_start(cfg, total)

    train_model = dataclasses.replace(cfg.model, layout=cfg.train_layout)
    learner = BootstrapLearner(train_model, cfg.method, cfg.gamma, cfg.predictor_lead_embedding).to(
        runtime.device
    )
    init = [p.detach().clone() for p in learner.target.encoder.parameters()]
    init_norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(init))))
    if cfg.sync_bn and runtime.device.type != "cuda":
        raise InputError("--sync-bn needs CUDA: torch's SyncBatchNorm has no CPU kernel")
    if runtime.distributed and cfg.sync_bn:
        learner = torch.nn.SyncBatchNorm.convert_sync_batchnorm(learner)
    optimizer = torch.optim.AdamW(_param_groups(learner, cfg.weight_decay), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    step = 0
    manifest = dataset.manifest()
    if resume:
        _check_same_corpus(out / CORPUS, manifest)
        state = checkpoint.load(out / CHECKPOINT, runtime.device)
        _check_same_recipe(out, state, cfg, total)
        learner.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step = int(state["step"])
    init_share = math.prod(cosine_momentum(s, total, m0) for s in range(1, step + 1))
    model: torch.nn.Module = learner
    if runtime.distributed:
        ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
        model = DistributedDataParallel(learner, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)

    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:  # a fresh start (--force): an earlier run's checkpoint must not be resumed
            (out / CHECKPOINT).unlink(missing_ok=True)
        write_text(out / CONFIG, dump_toml(cfg))
        write_json(out / CORPUS, manifest)
        _truncate_metrics(out / METRICS, step)
    augment = Augmenter(cfg.augment, fs=cfg.preprocess.fs)
    bar = tqdm(
        total=total, initial=step, desc=f"pretrain {cfg.method}", unit="step",
        disable=not (progress and runtime.is_main),
    )  # fmt: skip
    last: dict[str, float] = {}
    started = time.perf_counter()
    journal = appending(out / METRICS) if runtime.is_main else contextlib.nullcontext()
    deferred = (
        checkpoint.deferred_interrupt() if not runtime.distributed else contextlib.nullcontext([])
    )
    with bar, journal as log, deferred as interrupted:
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            batches = epoch_batches(len(dataset), epoch, cfg, runtime)[offset:]
            loader = DataLoader(
                dataset, batch_sampler=batches, pin_memory=runtime.device.type == "cuda"
            )
            for x, mask in loader:
                if step >= total:
                    break
                tick = time.perf_counter()
                last = _train_step(model, learner, augment, optimizer, scheduler, x, mask, step,
                                   total, m0, cfg, runtime)  # fmt: skip
                step += 1
                init_share *= last["momentum"]
                last["target_init_share"] = init_share
                last["target_drift"] = _drift(learner.target.encoder, init) / init_norm
                last["samples_per_s"] = cfg.batch_size / (time.perf_counter() - tick)
                if log:
                    log.write(json.dumps({"step": step, "epoch": epoch, **last}) + "\n")
                bar.set_postfix(loss=f"{last['loss']:.4f}", std=f"{last['collapse_std']:.3f}",
                                refresh=False)  # fmt: skip
                bar.update(1)  # redraws at the bar's own pace (every 30 s into a log)
                if step % cfg.checkpoint_every == 0 or step == total or interrupted:
                    _save(out, learner, optimizer, scheduler, step, total, cfg, runtime, dataset)
                if interrupted:  # saved at this step: --resume goes on from it
                    raise KeyboardInterrupt
    summary = {
        "method": cfg.method,
        "steps": step,
        "total_steps": total,
        "epochs": cfg.epochs,
        "windows": len(dataset),
        "momentum_start": m0,
        "world_size": runtime.world_size,
        "device": str(runtime.device),
        "autocast": "bf16" if runtime.device.type == "cuda" else "fp32",
        "seconds": round(time.perf_counter() - started, 2),
        **{k: round(v, 6) for k, v in last.items()},
    }
    if runtime.is_main:
        write_json(out / "summary.json", summary)
    return summary


def _check_same_corpus(path: Path, now: list[dict]) -> None:
    """A resumed run must see the windows it started on, or its epochs would not line up."""
    try:
        before = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise InputError(f"{path}: missing or unreadable; cannot check the corpus") from None
    if [(s["cache_key"], s["windows"]) for s in before] != [
        (s["cache_key"], s["windows"]) for s in now
    ]:
        raise InputError(
            f"{path}: the --data folders (or their contents) differ from the run's start; "
            "resume with the same folders, or start a new run"
        )


def _param_groups(learner: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and linear weights only, not on BatchNorm and bias parameters."""
    params = [p for p in learner.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


@torch.no_grad()
def _drift(encoder: torch.nn.Module, init: list[torch.Tensor]) -> float:
    """L2 distance of the target encoder's weights from their random init (one device sync)."""
    diffs = torch._foreach_sub(list(encoder.parameters()), init)
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs))))


def _load_corpus(folders, cfg: PretrainConfig, runtime: Runtime) -> Corpus:
    """Rank 0 prepares the caches; the other ranks wait, then open the same ones."""

    def load(show: bool) -> Corpus:
        return load_corpus(folders, cfg.preprocess, cfg.split, cfg.data_fraction, cfg.seed, show)

    if runtime.is_main:
        corpus = load(True)
    if runtime.distributed:
        dist.barrier()
    if not runtime.is_main:
        corpus = load(False)
    return corpus


def _train_step(model, learner, augment, optimizer, scheduler, x, mask, step, total, m0, cfg,
                runtime):  # fmt: skip
    x = x.to(runtime.device, non_blocking=True)
    mask = mask.to(runtime.device, non_blocking=True)
    g = generator(runtime.device, (cfg.seed * 1_000_003 + step) * 64 + runtime.rank)
    view1, view2 = augment(x, g), augment(x, g)
    online_masks = None
    if cfg.online_lead_drop > 0:
        online_masks = tuple(kept_leads(mask, cfg.online_lead_drop, g) for _ in range(2))
    with runtime.autocast():
        result = model(view1, view2, mask, online_masks)
    optimizer.zero_grad(set_to_none=True)
    result["loss"].backward()
    torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    momentum = cosine_momentum(step + 1, total, m0)
    learner.update_target(momentum)
    metrics = {k: float(v.detach()) for k, v in result.items()}
    metrics["lr"] = scheduler.get_last_lr()[0]
    metrics["momentum"] = momentum
    return metrics


def _check_same_recipe(out: Path, state: dict, cfg: PretrainConfig, total: int) -> None:
    """A resumed run keeps its recipe and length: anything else would splice two runs."""
    changed = changed_setting(from_dict(PretrainConfig, state["config"]), cfg, RESUME_MAY_CHANGE)
    if changed:
        name, was, now = changed
        raise InputError(f"{out}: --resume with {name} = {now}, but the run has {was}; "
                         "resume with the run's settings or start a new run")  # fmt: skip
    if state.get("total_steps", total) != total:
        raise InputError(f"{out}: --resume with {total} steps in all, but the run has "
                         f"{state['total_steps']}; drop --max-steps or give the run's")  # fmt: skip


def _save(out, learner, optimizer, scheduler, step, total, cfg, runtime, dataset: Corpus) -> None:
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
            "total_steps": total,
            "config": config_dict(cfg),
        },
        out / CHECKPOINT,
    )
    save_encoder(learner.online.encoder, cfg, step, dataset, runtime.device, out / ENCODER)


def save_encoder(encoder: torch.nn.Module, cfg: PretrainConfig, step: int, dataset: Corpus,
                 device: torch.device, path: Path) -> None:  # fmt: skip
    """Write `encoder` (the learner's, in `cfg.train_layout`) as an encoder file, what
    fine-tuning loads: in the model's layout, BatchNorm re-estimated on clean windows where the
    recipe says so."""
    if cfg.recalibrate_bn:
        encoder = recalibrate_batchnorm(encoder, dataset, cfg.batch_size, device)
    state = encoder.state_dict()
    if cfg.train_layout != cfg.model.layout and not cfg.model.shared_weights:
        state = convert_layout(state, cfg.model.n_leads, to=cfg.model.layout)
    checkpoint.save(
        {
            "format": ENCODER_FORMAT,
            "method": cfg.method,
            "step": step,
            "model_config": config_dict(cfg.model),
            "preprocess": config_dict(cfg.preprocess),
            "encoder": state,
            "batchnorm": "clean windows" if cfg.recalibrate_bn else "augmented views",
        },
        path,
    )


@torch.no_grad()
def recalibrate_batchnorm(
    encoder: torch.nn.Module, dataset: Corpus, batch_size: int, device: torch.device
) -> torch.nn.Module:
    """A copy of `encoder` whose BatchNorm running statistics are the exact averages over the
    clean (un-augmented) windows of `dataset`, not the EMA over augmented views of training."""
    encoder = copy.deepcopy(encoder).train()
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, mask in loader:
        encoder(x.to(device), mask.to(device))
    for m in norms:
        m.momentum = 0.1
    return encoder.eval()


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines up to `step`: a killed run may have logged past its last checkpoint, and
    torn its last line."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_text(path, "".join(line + "\n" for line in kept))


def encoder_source(path: Path) -> Path:
    """The file an init reads: a run's `encoder.pt`, else its `checkpoint.pt`, or the file. A run
    folder without `summary.json` has stopped before its end (its encoder is the last
    checkpoint's) and is refused; naming its `encoder.pt` takes that encoder as it is."""
    if not path.is_dir():
        return path
    if (path / SUBSET).is_file() or (path / MODEL).is_file():
        raise InputError(f"{path}: a fine-tuning run, not a pretraining run; --init takes a "
                         "pretraining run, its encoder.pt or a shipped encoder "
                         "(bell-edge pretrained list)")  # fmt: skip
    if (path / CHECKPOINT).is_file() and not (path / "summary.json").is_file():
        raise InputError(
            f"{path}: an unfinished pretraining run (no summary.json); finish it with "
            f"`bell-edge pretrain ... --out {path} --resume`, or pass {path / ENCODER} to take "
            "its last checkpoint's encoder as it is"
        )
    if (path / ENCODER).is_file():
        return path / ENCODER
    return path / CHECKPOINT


def load_encoder(path: str | Path) -> tuple[ModelConfig, PreprocessConfig, dict, str]:
    """Encoder weights from a pretraining run dir, its `encoder.pt`, or its `checkpoint.pt`.

    Returns (model config, preprocessing config, encoder state dict, method).
    """
    path = encoder_source(Path(path))
    state = checkpoint.load(path)
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt == ENCODER_FORMAT:
        model, pre, encoder = state["model_config"], state["preprocess"], state["encoder"]
        method = state["method"]
    elif fmt == "bell-edge-pretrain":
        cfg = from_dict(PretrainConfig, state["config"])
        prefix = "online.encoder."
        encoder = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        if any(k.startswith("grouped.") for k in encoder) and cfg.model.layout != "grouped":
            encoder = convert_layout(encoder, cfg.model.n_leads, to=cfg.model.layout)
        model, pre, method = config_dict(cfg.model), config_dict(cfg.preprocess), cfg.method
    else:
        raise InputError(f"{path}: not a bell-edge pretraining checkpoint")
    return from_dict(ModelConfig, model), from_dict(PreprocessConfig, pre), encoder, method
