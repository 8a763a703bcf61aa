"""Supervised fine-tuning with scarce labels: linear probe or full fine-tuning.

A run directory holds `config.toml`, `subset.json` (the labeled records used, reusable by every
method compared), `metrics.jsonl` (one line per epoch), `model.pt` (the best state by validation
macro AUROC, with its per-class decision thresholds) and `summary.json`. While it runs it also
holds `checkpoint.pt`, the state at an epoch's end, saved every minute and at Ctrl-C, from which
`resume` continues exactly; it is removed once `model.pt` is written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bell_edge.config import FinetuneConfig, changed_setting, dump_toml, from_dict
from bell_edge.config import to_dict as config_dict
from bell_edge.data import cache as data_cache
from bell_edge.data.datasets import parse_tasks
from bell_edge.data.splits import label_subset, load_subset, save_subset, subset_rows
from bell_edge.errors import InputError
from bell_edge.files import appending, holds_files, staged_file, write_json, write_text
from bell_edge.metrics import (
    best_f1_thresholds,
    evaluate_scores,
    exclusive_pairs,
    per_record,
    separable,
)
from bell_edge.models import pretrained
from bell_edge.models.artifact import (
    CHECKPOINT,
    CLASSIFIER_FORMAT,
    CONFIG,
    MODEL,
    SUBSET,
    Classifier,
    check_run_dir,
    predict,
)
from bell_edge.models.heads import ECGClassifier
from bell_edge.ssl.augment import Augmenter
from bell_edge.train import checkpoint
from bell_edge.train.device import generator, resolve_device
from bell_edge.train.lead_sets import drop_leads, lead_set_thresholds
from bell_edge.train.pretrain import load_encoder

METRICS = "metrics.jsonl"
VAL_SCORES = "val_scores.npz"  # record ids, per-record scores and labels of the selection split
CHECKPOINT_FORMAT = "bell-edge-finetune-checkpoint"
SAVE_EVERY_S = 60.0  # a kill loses at most about this much training
RESUME_MAY_CHANGE = ("device",)  # how a run runs, not its recipe


def finetune(
    data: str | Path,
    out: str | Path,
    cfg: FinetuneConfig,
    init: str | Path | None = None,
    subset: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    start: Classifier | None = None,
    holdout: list[str] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune from a pretrained encoder (`init`) or from scratch; returns the summary.

    `start`: fine-tune this classifier instead (a pruned one, say), with its model and
    preprocessing configs; `init` then only names where it came from.
    `holdout`: select the model on these records of the train and val splits and train on the
    others (one fold of a k-fold estimate) instead of the folder's own val split.
    `resume`: continue from `out`'s checkpoint, with the same data, init and settings, or start
    in a missing or empty `out`.
    """
    out = Path(out)
    resume = _resumable(out, resume, force, progress)
    if cfg.mode not in ("linear", "full"):
        raise InputError(f"--mode {cfg.mode}: use linear or full")
    if not 0.0 <= cfg.lead_dropout < 1.0:
        raise InputError(f"--lead-dropout {cfg.lead_dropout}: use a share in [0, 1)")
    cfg = dataclasses.replace(cfg, tasks=parse_tasks(cfg.tasks))
    checkpoint.seed_everything(cfg.seed)
    device = resolve_device(cfg.device)

    encoder_state, init_method, origin = None, "scratch", "scratch"
    if start is not None:
        cfg = dataclasses.replace(cfg, model=start.model_config, preprocess=start.preprocess)
        init_method, origin = "classifier", f"classifier {init}"
    elif init is not None:
        source = pretrained.resolve_init(init)
        model_cfg, preprocess, encoder_state, init_method = load_encoder(source)
        cfg = dataclasses.replace(cfg, model=model_cfg, preprocess=preprocess)
        origin = str(Path(source).resolve())
    cache = data_cache.load(data, cfg.preprocess, progress=progress, tasks=cfg.tasks)
    if not cache.classes:
        raise InputError(f"{data}: unlabeled; fine-tuning needs labels")
    if start is not None and tuple(cache.classes) != start.classes:
        raise InputError(f"{data}: classes {', '.join(cache.classes)} are not the model's")
    n_classes = len(cache.classes)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, n_classes=n_classes))
    train_rows, val_rows = cache.rows("train"), cache.rows("val")
    if holdout is not None:
        pool = np.concatenate([train_rows, val_rows])
        held = np.isin(cache.record_ids[pool], np.asarray(holdout, dtype=str))
        train_rows, val_rows = pool[~held], pool[held]
    if len(val_rows) == 0:
        raise InputError(f"{data}: no val split to select the model on")

    identity = {
        "config": config_dict(cfg),
        "init": origin,
        "data": cache.meta["key"],
        "holdout": sorted(holdout) if holdout is not None else None,
    }
    saved = checkpoint.load(out / CHECKPOINT) if resume else None
    if saved is not None:
        _check_same_run(out, saved, identity, cfg)
    else:  # a fresh start (--force): an earlier run's checkpoint must not be resumed into it
        (out / CHECKPOINT).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    chosen = _label_subset(cache, cfg, subset, out, train_rows, resume)
    train_rows = train_rows[subset_rows(cache.record_ids[train_rows], chosen)]
    write_text(out / CONFIG, dump_toml(cfg))

    model = ECGClassifier(cfg.model) if start is None else start.model
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state, strict=True)
    model.to(device)
    probing = cfg.mode == "full" and cfg.probe_epochs > 0 and encoder_state is not None
    logged = _keep_lines(out / METRICS, saved["metrics_lines"]) if saved is not None else 0
    with (
        appending(out / METRICS, fresh=saved is None) as log,
        checkpoint.deferred_interrupt() as interrupted,
    ):
        journal = _Journal(out, log, logged, identity, interrupted, saved)
        if probing and journal.resumes("train"):
            model.encoder.requires_grad_(True)  # the probe had ended: on with the full phase
        elif probing:
            probe_cfg = dataclasses.replace(cfg, mode="linear", epochs=cfg.probe_epochs)
            probe = _LinearProbe(model, cache, train_rows, val_rows, probe_cfg, device)
            model.load_state_dict(probe.fit(journal, "probe", progress)["state"])
            model.encoder.requires_grad_(True)
        if cfg.mode == "linear":
            trainer = _LinearProbe(model, cache, train_rows, val_rows, cfg, device)
        else:
            trainer = _FullFineTune(model, cache, train_rows, val_rows, cfg, device,
                                    pretrained=encoder_state is not None)  # fmt: skip
        best = trainer.fit(journal, "train", progress)

    model.load_state_dict(best["state"])
    model.cpu()
    val_scores = predict(model, cache.windows[val_rows], cache.lead_masks[val_rows])
    ids, val_scores, val_labels = per_record(
        cache.record_ids[val_rows], val_scores, cache.labels[val_rows]
    )
    with staged_file(out / VAL_SCORES) as tmp:  # per record, for paired comparisons
        np.savez(tmp, record_ids=ids, scores=val_scores, labels=val_labels)
    thresholds = best_f1_thresholds(val_labels, val_scores)
    val = evaluate_scores(val_labels, val_scores, cache.classes, thresholds, bootstrap=0)
    by_lead_set = lead_set_thresholds(
        lambda x, m: predict(model, x, m), cache.windows[val_rows], cache.lead_masks[val_rows],
        cache.record_ids[val_rows], cache.labels[val_rows], cache.classes,
    )  # fmt: skip
    _, first = np.unique(cache.record_ids[train_rows], return_index=True)
    train_labels = cache.labels[train_rows][first]  # one row per record
    checkpoint.save(
        {
            "format": CLASSIFIER_FORMAT,
            "model": model.state_dict(),
            "model_config": config_dict(cfg.model),
            "preprocess": config_dict(cfg.preprocess),
            "classes": list(cache.classes),
            "thresholds": thresholds.tolist(),
            "fitted_classes": [
                c
                for c, ok in zip(cache.classes, separable(val_labels, val_scores), strict=True)
                if ok
            ],
            "exclusive_pairs": exclusive_pairs(train_labels, cache.classes),
            "init": str(init) if init else "scratch",
            "init_method": init_method,
            "label_fraction": cfg.label_fraction,
            "mode": cfg.mode,
            "val_macro_auroc": val["macro_auroc"],
            "tasks": list(cfg.tasks),
            "lead_set_thresholds": by_lead_set,
        },
        out / MODEL,
    )
    summary = {
        "init": init_method,
        "mode": cfg.mode,
        "label_fraction": cfg.label_fraction,
        "train_records": int(len(np.unique(cache.record_ids[train_rows]))),
        "best_epoch": best["epoch"],
        "epochs_run": best["epochs_run"],
        "seconds": best["seconds"],
        "val": val,
        "val_by_lead_set": {k: v["val_macro_auroc"] for k, v in by_lead_set.items()},
    }
    write_json(out / "summary.json", summary)
    (out / CHECKPOINT).unlink(missing_ok=True)
    return summary


def _resumable(out: Path, resume: bool, force: bool, progress: bool) -> bool:
    """Whether the run continues from `out`'s checkpoint; else it starts, in a folder that
    `check_run_dir` allows (with `resume`: a missing or empty one, as `pretrain` does)."""
    if not resume:
        check_run_dir(out, force)
        return False
    if (out / CHECKPOINT).is_file():
        return True
    if (out / MODEL).is_file():
        raise InputError(f"{out}: already complete, with {MODEL} (--force starts it again)")
    if holds_files(out) and not force:
        raise InputError(f"{out}: not empty and no {CHECKPOINT} to resume (it is saved every "
                         f"{SAVE_EVERY_S:.0f} s; --force starts the run again)")  # fmt: skip
    if progress:
        print(f"{out}: no {CHECKPOINT} yet, starting the run", file=sys.stderr)
    return False


def _check_same_run(out: Path, saved: dict, identity: dict, cfg: FinetuneConfig) -> None:
    """A resumed run keeps its data, init and recipe: anything else would splice two runs."""
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{out / CHECKPOINT}: not a bell-edge fine-tuning checkpoint")
    was = saved["run"]
    changed = changed_setting(from_dict(FinetuneConfig, was["config"]), cfg, RESUME_MAY_CHANGE)
    if changed:
        name, before, now = changed
        raise InputError(f"{out}: --resume with {name} = {now}, but the run has {before}; "
                         "resume with the run's settings or start a new run")  # fmt: skip
    if was["init"] != identity["init"]:
        raise InputError(f"{out}: --resume from {identity['init']}, but the run started from "
                         f"{was['init']}")  # fmt: skip
    if was["data"] != identity["data"] or was["holdout"] != identity["holdout"]:
        raise InputError(f"{out}: --resume on other data or folds than the run started on")


class _Journal:
    """What a run leaves as it trains: a metrics line per epoch and, every `SAVE_EVERY_S` and at
    Ctrl-C (after which the run stops), a checkpoint of the phase in progress: the trainer's
    state, the RNG state and how many metrics lines it covers."""

    def __init__(self, out: Path, log, lines: int, identity: dict, interrupted: list,
                 saved: dict | None) -> None:  # fmt: skip
        self.out, self.log, self.lines, self.identity = out, log, lines, identity
        self.interrupted, self.saved = interrupted, saved
        self.last_save = time.monotonic()

    def resumes(self, phase: str) -> bool:
        return self.saved is not None and self.saved["phase"] == phase

    def resume_state(self, phase: str) -> dict | None:
        """The saved trainer state of `phase`, with the RNG put back as it was then."""
        if not self.resumes(phase):
            return None
        checkpoint.set_rng_state(self.saved["rng"])
        return self.saved["trainer"]

    def epoch_done(self, phase: str, row: dict, trainer_state) -> None:
        self.log.write(json.dumps(row) + "\n")
        self.lines += 1
        if self.interrupted or time.monotonic() - self.last_save >= SAVE_EVERY_S:
            checkpoint.save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "run": self.identity,
                    "phase": phase,
                    "trainer": trainer_state(),
                    "rng": checkpoint.rng_state(),
                    "metrics_lines": self.lines,
                },
                self.out / CHECKPOINT,
            )
            self.last_save = time.monotonic()
        if self.interrupted:  # saved at this epoch's end: --resume goes on from it
            raise KeyboardInterrupt


def _keep_lines(path: Path, n: int) -> int:
    """Keep the first `n` lines of the log at `path` (a killed run may have logged past its
    checkpoint); the number kept. Done before the log is opened: it replaces the file."""
    lines = path.read_text().splitlines()[:n] if path.is_file() else []
    write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_label_subset(cache, fraction: float, seed: int, path: Path, rows=None) -> list[str]:
    """A seeded stratified subset of the train split's records (or of `rows`), saved as a
    subset manifest."""
    train = cache.rows("train") if rows is None else rows
    ids, labels = cache.record_ids[train], cache.labels[train]
    chosen = sorted(set(ids[label_subset(ids, labels, fraction, seed)].tolist()))
    rows = subset_rows(ids, chosen)
    save_subset(
        path, ids[rows], fraction, seed, str(cache.meta["source"]),
        labels=labels[rows], classes=cache.classes,
    )  # fmt: skip
    return chosen


def _label_subset(cache, cfg, subset, out: Path, train_rows, resume: bool) -> list[str]:
    """The labeled records to train on: a given manifest (copied into the run), or a new one;
    a resumed run keeps its own."""
    if resume:
        chosen = list(load_subset(out / SUBSET)["record_ids"])
        if subset is not None and set(load_subset(subset)["record_ids"]) != set(chosen):
            raise InputError(f"{subset}: not the labeled subset the run in {out} started with")
        return chosen
    if subset is None:
        return write_label_subset(cache, cfg.label_fraction, cfg.seed, out / SUBSET, train_rows)
    manifest = load_subset(subset)
    if manifest["fraction"] != cfg.label_fraction:
        raise InputError(
            f"{subset}: subset of fraction {manifest['fraction']}, "
            f"--label-fraction is {cfg.label_fraction}"
        )
    with staged_file(out / SUBSET) as tmp:
        shutil.copyfile(subset, tmp)
    return list(manifest["record_ids"])


class _Trainer:
    """Epoch loop with early stopping on validation macro AUROC, keeping the best state."""

    def __init__(self, model, cache, train_rows, val_rows, cfg: FinetuneConfig, device) -> None:
        self.model, self.cache, self.cfg, self.device = model, cache, cfg, device
        self.train_rows, self.val_rows = train_rows, val_rows
        self.loss = nn.BCEWithLogitsLoss()
        self.optimizer: torch.optim.Optimizer
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None

    def fit(self, journal: _Journal, phase: str, progress: bool) -> dict[str, Any]:
        """Train, logging each epoch to `journal` as `phase` (a resumed phase goes on from its
        saved state); the best state by val macro AUROC."""
        cfg, started = self.cfg, time.perf_counter()
        best: dict[str, Any] = {"auroc": -1.0, "epoch": 0, "state": None}
        stale, epoch, seconds_before = 0, 0, 0.0
        if (saved := journal.resume_state(phase)) is not None:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(saved["scheduler"])
            best, stale, epoch, seconds_before = (saved["best"], saved["stale"], saved["epoch"],
                                                  saved["seconds"])  # fmt: skip
        bar = tqdm(total=cfg.epochs, initial=epoch, desc=f"finetune {cfg.mode}", unit="epoch",
                   disable=not progress)  # fmt: skip
        while epoch < cfg.epochs and stale < cfg.patience:
            epoch += 1
            train_loss = self.train_epoch(epoch)
            auroc = self.val_auroc()
            if auroc > best["auroc"]:
                best = {"auroc": auroc, "epoch": epoch, "state": self.state()}
                stale = 0
            else:
                stale += 1
            seconds = seconds_before + time.perf_counter() - started
            row = {"phase": cfg.mode, "epoch": epoch, "train_loss": train_loss,
                   "val_macro_auroc": auroc}  # fmt: skip
            journal.epoch_done(phase, row, lambda e=epoch, b=best, s=stale, t=seconds: {
                "model": self.state(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler and self.scheduler.state_dict(),
                "epoch": e, "best": b, "stale": s, "seconds": t,
            })  # fmt: skip
            bar.set_postfix(loss=f"{train_loss:.4f}", val_auroc=f"{auroc:.4f}",
                            best=f"{best['auroc']:.4f} (epoch {best['epoch']})",
                            refresh=False)  # fmt: skip
            bar.update()  # after the postfix, so the count and the figures are one epoch's
        if stale >= cfg.patience:
            bar.set_description(f"finetune {cfg.mode} (stopped early: no gain in {stale} epochs)")
        bar.close()
        best["epochs_run"] = epoch
        best["seconds"] = round(seconds_before + time.perf_counter() - started, 2)
        return best

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def val_auroc(self) -> float:
        scores = self.val_scores()
        ids, scores, labels = per_record(
            self.cache.record_ids[self.val_rows], scores, self.cache.labels[self.val_rows]
        )
        value = evaluate_scores(labels, scores, self.cache.classes, bootstrap=0)["macro_auroc"]
        return float("nan") if value is None else float(value)

    def batches(self, epoch: int):
        rng = np.random.default_rng((self.cfg.seed, epoch))
        order = rng.permutation(len(self.train_rows))
        size = self.cfg.batch_size
        return [order[i : i + size] for i in range(0, len(order), size)]


class _FullFineTune(_Trainer):
    """Everything trains; the encoder at a lower learning rate; light augmentation.

    With `l2sp` the encoder's conv weights are pulled toward their starting (pretrained) values
    instead of decayed toward zero; with `layer_lr_decay` < 1 lower blocks learn more slowly.
    """

    def __init__(self, *args, pretrained: bool = False) -> None:
        super().__init__(*args)
        cfg, self.pretrained = self.cfg, pretrained
        self.anchor = []
        if cfg.l2sp > 0:
            self.anchor = [
                (p, p.detach().clone()) for p in self.model.encoder.parameters() if p.ndim > 1
            ]
        groups = _encoder_groups(self.model.encoder, cfg, decay_weights=not self.anchor)
        groups += [
            {"params": [p for p in self.model.head.parameters() if p.ndim > 1], "lr": cfg.lr},
            {"params": [p for p in self.model.head.parameters() if p.ndim <= 1], "lr": cfg.lr,
             "weight_decay": 0.0},
        ]  # fmt: skip
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * len(self.batches(0))
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1
        )
        self.augment = Augmenter(cfg.augment, fs=cfg.preprocess.fs)

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        if self.cfg.freeze_bn and self.pretrained:
            for m in self.model.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        g = generator(self.device, self.cfg.seed * 100_003 + epoch)
        losses = []
        for idx in self.batches(epoch):
            rows = np.sort(self.train_rows[idx])
            x = torch.from_numpy(self.cache.windows[rows]).to(self.device)
            mask = torch.from_numpy(self.cache.lead_masks[rows]).to(self.device)
            y = torch.from_numpy(self.cache.labels[rows]).to(self.device)
            x = self.augment(x, g)
            x, mask = drop_leads(x, mask, self.cfg.lead_dropout, g)
            loss = self.loss(self.model(x, mask), y)
            if self.anchor:
                loss = loss + self.cfg.l2sp * sum((p - p0).pow(2).sum() for p, p0 in self.anchor)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def val_scores(self) -> np.ndarray:
        self.model.cpu()
        rows = self.val_rows
        scores = predict(self.model, self.cache.windows[rows], self.cache.lead_masks[rows])
        self.model.to(self.device)
        return scores


def _encoder_groups(encoder: nn.Module, cfg: FinetuneConfig, decay_weights: bool) -> list[dict]:
    """Optimizer groups of the encoder: one lr per depth (stem deepest), and no weight decay on
    BatchNorm and bias parameters (nor on any weight when L2-SP anchors them instead)."""
    n_blocks = sum(cfg.model.blocks_per_stage)

    def depth(name: str) -> int:  # 0 for the top block, n_blocks for the stem
        parts = name.split(".")
        if "blocks" in parts:
            return n_blocks - 1 - int(parts[parts.index("blocks") + 1])
        return n_blocks

    groups: dict[tuple[int, bool], list] = {}
    for name, p in encoder.named_parameters():
        groups.setdefault((depth(name), p.ndim > 1 and decay_weights), []).append(p)
    base = cfg.lr * cfg.encoder_lr_scale
    return [
        {"params": params, "lr": base * cfg.layer_lr_decay**d,
         "weight_decay": cfg.weight_decay if decays else 0.0}
        for (d, decays), params in sorted(groups.items())
    ]  # fmt: skip


class _LinearProbe(_Trainer):
    """Frozen encoder in eval mode (BatchNorm statistics untouched): features are computed once
    and only the linear head trains on them."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        encoder = self.model.encoder.eval().requires_grad_(False)
        self.train_features = self._features(encoder, self.train_rows)
        self.val_features = self._features(encoder, self.val_rows)
        self.optimizer = torch.optim.AdamW(
            self.model.head.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )

    @torch.no_grad()
    def _features(self, encoder, rows) -> torch.Tensor:
        parts = []
        for i in range(0, len(rows), 256):
            chunk = rows[i : i + 256]
            x = torch.from_numpy(self.cache.windows[chunk]).to(self.device)
            m = torch.from_numpy(self.cache.lead_masks[chunk]).to(self.device)
            parts.append(encoder.features(x, m))
        return torch.cat(parts)

    def train_epoch(self, epoch: int) -> float:
        head = self.model.head.train()
        losses = []
        for idx in self.batches(epoch):
            y = torch.from_numpy(self.cache.labels[self.train_rows[idx]]).to(self.device)
            loss = self.loss(head(self.train_features[idx]), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    @torch.no_grad()
    def val_scores(self) -> np.ndarray:
        return torch.sigmoid(self.model.head.eval()(self.val_features)).cpu().numpy()
