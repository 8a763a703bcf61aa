"""The label-efficiency experiment: BELL vs BYOL vs random init, linear probe and full fine-tuning,
at several label fractions and seeds, all on the same labeled subsets.

Layout of DIR: `pretrain/{bell,byol}/` (one pretraining run each), `subsets/` (one manifest per
fraction and seed, shared by every method), `runs/<method>-<mode>-f<fraction>-s<seed>/`,
`results.json`, `report.md` and `label_efficiency.png`. A finished run is never redone, so an
interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bell_edge.config import FinetuneConfig, PretrainConfig, replace
from bell_edge.data import cache as data_cache
from bell_edge.data.datasets import parse_tasks
from bell_edge.errors import InputError
from bell_edge.train.finetune import finetune, write_label_subset
from bell_edge.train.pretrain import pretrain

METHODS = ("bell", "byol", "scratch")
MODES = ("linear", "full")


@dataclasses.dataclass(frozen=True)
class Budget:
    pretrain_epochs: int
    finetune_epochs: dict[float, int]  # by label fraction: fewer labels, more epochs
    linear_epochs: int


BUDGETS = {
    "small": Budget(  # about 27 minutes on 2 quiet CPU cores
        pretrain_epochs=10, finetune_epochs={0.01: 30, 0.1: 20, 1.0: 5}, linear_epochs=60
    ),
    "full": Budget(
        pretrain_epochs=100, finetune_epochs={0.01: 80, 0.1: 60, 1.0: 40}, linear_epochs=200
    ),
}


def _epochs(budget: Budget, fraction: float) -> int:
    nearest = min(budget.finetune_epochs, key=lambda f: abs(np.log(f) - np.log(fraction)))
    return budget.finetune_epochs[nearest]


def label_efficiency(
    data: str | Path,
    out: str | Path,
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0),
    seeds: int = 3,
    budget: str = "small",
    pretrain_config: PretrainConfig | None = None,
    finetune_config: FinetuneConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    tasks: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    if budget not in BUDGETS:
        raise InputError(f"--budget {budget}: use {' or '.join(BUDGETS)}")
    plan = BUDGETS[budget]
    out = Path(out)
    pre_cfg = replace(
        pretrain_config or PretrainConfig(), epochs=plan.pretrain_epochs, device=device
    )
    tasks = parse_tasks(tasks)
    ft_cfg = replace(finetune_config or FinetuneConfig(), device=device, tasks=tasks or None)
    cache = data_cache.load(data, pre_cfg.preprocess, progress=progress, tasks=tasks)
    if not cache.classes or len(cache.rows("val")) == 0:
        raise InputError(f"{data}: the experiment needs a labeled folder with a val split")
    started = time.perf_counter()

    encoders = {}
    for method in ("bell", "byol"):
        run = out / "pretrain" / method
        if not (run / "summary.json").is_file():
            resume = (run / "checkpoint.pt").is_file()
            pretrain(cache.root, run, replace(pre_cfg, method=method), resume=resume, force=True,
                     progress=progress)  # fmt: skip
        encoders[method] = run

    subsets = _subsets(cache, fractions, seeds, out / "subsets")
    jobs = [
        (m, mode, f, s) for f in fractions for s in range(seeds) for m in METHODS for mode in MODES
    ]
    results = []
    for method, mode, fraction, seed in tqdm(jobs, desc="label efficiency", unit="run",
                                             disable=not progress):  # fmt: skip
        run = out / "runs" / f"{method}-{mode}-f{fraction:g}-s{seed}"
        if not (run / "summary.json").is_file():
            epochs = plan.linear_epochs if mode == "linear" else _epochs(plan, fraction)
            cfg = replace(ft_cfg, mode=mode, label_fraction=fraction, seed=seed, epochs=epochs,
                          patience=max(5, epochs // 3))  # fmt: skip
            subset = subsets[fraction, seed]
            init = encoders.get(method)
            finetune(cache.root, run, cfg, init=init, subset=subset, force=True, progress=False)
        summary = json.loads((run / "summary.json").read_text())
        val = summary["val"]
        results.append({
            "method": method, "mode": mode, "fraction": fraction, "seed": seed,
            "macro_auroc": val["macro_auroc"], "macro_auprc": val["macro_auprc"],
            "per_class": {c: v["auroc"] for c, v in val["per_class"].items()},
            "train_records": summary["train_records"], "best_epoch": summary["best_epoch"],
        })  # fmt: skip
    report = {
        "data": str(data),
        "budget": budget,
        "fractions": list(fractions),
        "seeds": seeds,
        "pretrain": {m: json.loads((encoders[m] / "summary.json").read_text()) for m in encoders},
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(report, indent=1))
    write_report(report, out)
    return report


def _subsets(cache, fractions, seeds, folder: Path) -> dict[tuple[float, int], Path]:
    """One stratified subset manifest per (fraction, seed), written once and shared."""
    paths = {}
    for fraction in fractions:
        for seed in range(seeds):
            path = folder / f"f{fraction:g}-s{seed}.json"
            if not path.is_file():
                write_label_subset(cache, fraction, seed, path)
            paths[fraction, seed] = path
    return paths


def summarize(results: list[dict]) -> dict[tuple[str, str, float], tuple[float, float, int]]:
    """(method, mode, fraction) -> (mean, std, n) of macro AUROC over seeds."""
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in results:
        groups.setdefault((r["method"], r["mode"], r["fraction"]), []).append(r["macro_auroc"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def write_report(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, fractions = report["results"], report["fractions"]
    table = summarize(results)
    lines = [
        "# Label efficiency: BELL vs BYOL vs random init",
        "",
        f"Data `{report['data']}`, budget `{report['budget']}`, {report['seeds']} seeds, "
        f"{report['seconds']:.0f} s in all. Macro AUROC on the val split, mean ± std over seeds.",
        "",
        "| method | mode | " + " | ".join(f"{f:g} labels" for f in fractions) + " |",
        "|---|---|" + "---|" * len(fractions),
    ]
    for method in METHODS:
        for mode in MODES:
            cells = []
            for f in fractions:
                mean, std, _ = table[method, mode, f]
                cells.append(f"{mean:.4f} ± {std:.4f}")
            lines.append(f"| {method} | {mode} | " + " | ".join(cells) + " |")
    lines += ["", "Gain over random init of the same architecture and mode (points of AUROC):", ""]
    lines += ["| method | mode | " + " | ".join(f"{f:g}" for f in fractions) + " |"]
    lines += ["|---|---|" + "---|" * len(fractions)]
    for method in ("bell", "byol"):
        for mode in MODES:
            gains = [
                100 * (table[method, mode, f][0] - table["scratch", mode, f][0]) for f in fractions
            ]
            lines.append(f"| {method} | {mode} | " + " | ".join(f"{g:+.2f}" for g in gains) + " |")
    classes = list(results[0]["per_class"])
    lines += ["", "Per-class AUROC (full fine-tuning, mean over seeds):", ""]
    lines += ["| method | labels | " + " | ".join(classes) + " |"]
    lines += ["|---|---|" + "---|" * len(classes)]
    for method in METHODS:
        for f in fractions:
            rows = [
                r for r in results if (r["method"], r["mode"], r["fraction"]) == (method, "full", f)
            ]
            means = [np.mean([r["per_class"][c] for r in rows if r["per_class"][c] is not None])
                     for c in classes]  # fmt: skip
            lines.append(f"| {method} | {f:g} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for method in METHODS:
            means = [table[method, mode, f][0] for f in fractions]
            stds = [table[method, mode, f][1] for f in fractions]
            ax.errorbar(fractions, means, yerr=stds, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("label fraction")
        ax.set_title(f"{mode} {'probe' if mode == 'linear' else 'fine-tuning'}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("val macro AUROC")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "label_efficiency.png", dpi=120)
    plt.close(fig)
