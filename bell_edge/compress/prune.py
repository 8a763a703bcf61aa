"""Structured channel pruning of a fine-tuned classifier's encoder, then a recovery fine-tune.

torch-pruning's dependency graph removes whole conv output channels together with everything
coupled to them (BatchNorm, the next conv's inputs, the residual add's other branch, the head's
input columns). Channels go smallest group L2 norm first (`GroupMagnitudeImportance(p=2)`).

Widths: every conv of every lead branch keeps `width * (1 - ratio)` channels rounded to the
nearest multiple of 8 (at least 8), the same in all 12 branches, so one `ModelConfig.channels`
tuple describes the pruned encoder. The targets are handed to torch-pruning per layer rather
than through its `round_to`, which rounds down and skips a layer it would round to 0 (ratio 0.7
left the 16-wide layers whole while 0.3 halved them). The head is protected: it keeps its
outputs (the classes) and only loses the input columns of pruned latent channels.

The pruned model is rebuilt from config + state dict (never a pickled module), then fine-tuned
briefly on the labeled subset its checkpoint was fine-tuned on, and saved as a normal
fine-tuned run, so `evaluate` and `export` take it unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import Tensor, nn

from bell_edge.config import FinetuneConfig, ModelConfig, load_toml
from bell_edge.data import cache as data_cache
from bell_edge.errors import InputError
from bell_edge.files import write_json
from bell_edge.metrics import evaluate_scores, per_record
from bell_edge.models.artifact import (
    CONFIG,
    MODEL,
    SUBSET,
    Classifier,
    check_run_dir,
    load_classifier,
    predict,
)
from bell_edge.models.encoder import count_macs, count_params
from bell_edge.models.heads import ECGClassifier

ROUND_TO = 8
SUMMARY = "prune.json"


def target_widths(widths: tuple[int, ...], ratio: float) -> tuple[int, ...]:
    """`width * (1 - ratio)` rounded half up to a multiple of 8, at least 8, never wider."""
    if ratio == 0:
        return tuple(widths)
    return tuple(
        min(w, max(ROUND_TO, ROUND_TO * int(w * (1 - ratio) / ROUND_TO + 0.5))) for w in widths
    )


def _convs(encoder: nn.Module) -> list[list[nn.Conv1d]]:
    """Per branch, the convs whose output widths `Branch.widths` lists, in that order."""
    out = []
    for branch in encoder.branches:
        convs = [branch.stem[0]]
        for block in branch.blocks:
            convs += [block.body[0], block.body[3]]
        out.append(convs)
    return out


def prune_inplace(model: ECGClassifier, ratio: float, n_samples: int) -> tuple[int, ...]:
    """Prune `model.encoder` in place to `target_widths`; returns the per-branch widths.

    Only the separate-weights "modules" layout is supported (torch-pruning cannot trace the
    shared layout's reshape). The module's cached latent width is stale afterwards: use it only
    through `rebuild`.
    """
    encoder = model.encoder
    if encoder.layout != "modules":
        raise InputError(f"pruning needs the 'modules' encoder layout, not {encoder.layout!r}")
    before = encoder.conv_widths()
    targets = target_widths(before, ratio)
    ratios = {
        conv: (w - t) / w - 1e-9  # torch-pruning keeps int(w * (1 - ratio)) = t channels
        for convs in _convs(encoder)
        for conv, w, t in zip(convs, before, targets, strict=True)
        if t < w
    }
    if ratios:
        model.eval()
        pruner = tp.pruner.MetaPruner(
            model,
            torch.zeros(1, encoder.n_leads, n_samples),
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=0.0,
            pruning_ratio_dict=ratios,
            ignored_layers=[model.head],
        )
        pruner.step()
    widths = encoder.conv_widths()
    if widths != targets:
        raise RuntimeError(f"pruning reached widths {widths}, not the targets {targets}")
    return widths


def rebuild(cfg: ModelConfig, state: Mapping[str, Tensor]) -> ECGClassifier:
    """A classifier built from `cfg` (explicit widths) with `state` loaded strictly."""
    model = ECGClassifier(cfg)
    model.load_state_dict(state, strict=True)
    return model.eval()


def prune_classifier(clf: Classifier, ratio: float) -> Classifier:
    """A pruned copy of `clf`, rebuilt from its new config + state dict (`clf` is untouched)."""
    module = copy.deepcopy(clf.model)
    widths = prune_inplace(module, ratio, clf.preprocess.window_samples)
    cfg = dataclasses.replace(clf.model_config, channels=widths)
    return dataclasses.replace(clf, model=rebuild(cfg, module.state_dict()), model_config=cfg)


def size(clf: Classifier) -> dict[str, Any]:
    """Parameters, encoder MACs per window, and per-branch conv widths."""
    return {
        "params": count_params(clf.model),
        "macs": count_macs(clf.model_config, clf.preprocess.window_samples),
        "widths": list(clf.model.encoder.conv_widths()),
    }


def val_macro_auroc(model: nn.Module, cache, rows: np.ndarray) -> float:
    """Macro AUROC per record (window scores averaged) on `rows` of `cache`."""
    scores = predict(model, cache.windows[rows], cache.lead_masks[rows])
    _, scores, labels = per_record(cache.record_ids[rows], scores, cache.labels[rows])
    return float(evaluate_scores(labels, scores, cache.classes, bootstrap=0)["macro_auroc"])


def _run_dir(ckpt: Path) -> Path:
    return ckpt if ckpt.is_dir() else ckpt.parent


def prune_run(
    ckpt: str | Path,
    ratio: float,
    data: str | Path,
    out: str | Path,
    finetune: Callable[..., dict[str, Any]],
    epochs: int = 8,
    force: bool = False,
    progress: bool = True,
    step: Callable[[str], None] = lambda name: None,
) -> dict[str, Any]:
    """Prune the fine-tuned `ckpt`, fine-tune it `epochs` epochs on its own labeled subset of
    `data`, save the run at `out` (model.pt as any fine-tuned run, plus prune.json).

    `finetune` is the fine-tuning entry point (the CLI passes the trainer's), so that
    compression imports nothing from the training layer."""
    if not 0 <= ratio < 1:
        raise InputError(f"--ratio {ratio}: must be in [0, 1)")
    if epochs < 1:
        raise InputError(f"--epochs {epochs}: must be at least 1")
    ckpt, out = Path(ckpt), Path(out)
    check_run_dir(out, force)
    clf = load_classifier(ckpt)
    subset = _run_dir(ckpt) / SUBSET
    if not subset.is_file():
        raise InputError(f"{ckpt}: no {SUBSET} beside it, so its labeled training records are "
                         "unknown")  # fmt: skip
    cfg_file = _run_dir(ckpt) / CONFIG
    cfg = load_toml(FinetuneConfig, cfg_file) if cfg_file.is_file() else FinetuneConfig()
    cfg = dataclasses.replace(cfg, mode="full", epochs=epochs,
                              label_fraction=clf.meta["label_fraction"])  # fmt: skip

    cache = data_cache.load(data, clf.preprocess, progress=progress)
    val = data_cache.labeled_rows(cache, "val", clf.classes, data)
    step("val macro AUROC of the original")
    original = {**size(clf), "val_macro_auroc": val_macro_auroc(clf.model, cache, val)}
    step(f"prune {ratio:g} of the encoder channels")
    pruned = prune_classifier(clf, ratio)
    after = {**size(pruned), "val_macro_auroc": val_macro_auroc(pruned.model, cache, val)}
    step(f"recovery fine-tune, {epochs} epochs")
    summary = finetune(cache.root, out, cfg, init=ckpt, subset=subset, force=force,
                       progress=progress, start=pruned)  # fmt: skip
    report = {
        "source": str(ckpt),
        "ratio": ratio,
        "before": original,
        "after": {**after, "recovered_val_macro_auroc": summary["val"]["macro_auroc"]},
        "epochs": epochs,
        "best_epoch": summary["best_epoch"],
        "seconds": summary["seconds"],
        "checkpoint": str(out / MODEL),
    }
    write_json(out / SUMMARY, report)
    return report
