"""Label-efficiency experiments: pretrained inits against random init of the same architecture,
linear probe and full fine-tuning, several label fractions and seeds, all on the same subsets.

Layout of DIR: `pretrain/<name>/` (pretraining runs), `subsets/` (one manifest per fraction,
seed and fold, shared by every init), `runs/<init>-<mode>-f<fraction>-s<seed>[-k<fold>]/`,
`results.json`, `report.md` and plots. Every stage stores the key of its config and inputs in
`stage.json`: a finished stage with the same key is reused, a changed one is redone, and the
log says which and why. An interrupted experiment resumes where it stopped.

Gains over random init come with a paired bootstrap: the same resamples of the evaluation
records score every init, so the interval reflects the records, and the seed mean the runs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from bell_edge.config import FinetuneConfig, PretrainConfig, config_hash, replace, to_dict
from bell_edge.data import cache as data_cache
from bell_edge.data.cache import file_sha256
from bell_edge.data.datasets import parse_tasks, record_folds
from bell_edge.errors import InputError
from bell_edge.files import claim_folder, staged_file, write_json, write_text
from bell_edge.metrics import bootstrap_aurocs
from bell_edge.models import pretrained
from bell_edge.train.corpus import load_corpus
from bell_edge.train.finetune import VAL_SCORES, finetune, write_label_subset
from bell_edge.train.pretrain import BUDGET_EPOCHS, CHECKPOINT, ENCODER, encoder_source, pretrain

MODES = ("linear", "full")
SCRATCH = "scratch"
STAGE = "stage.json"
RESAMPLES = 1000
# The plain supervised CNN of ../shared/REFERENCES.md (same train/val split, 2 CPU cores).
REFERENCE_CNN = {
    1.0: {"val": 0.945, "hidden_test": 0.908},
    0.1: {"val": 0.893, "hidden_test": 0.812},
}


@dataclasses.dataclass(frozen=True)
class Budget:
    pretrain_epochs: int
    finetune_epochs: dict[float, int]  # by label fraction: fewer labels, more epochs
    linear_epochs: int
    patience: int | None = None  # early-stopping patience; None: a third of the epochs (>= 5)


BUDGETS = {
    "small": Budget(BUDGET_EPOCHS["small"], {0.01: 30, 0.1: 20, 1.0: 5}, linear_epochs=60),
    "long": Budget(BUDGET_EPOCHS["long"], {0.01: 30, 0.1: 20, 1.0: 5}, linear_epochs=60),
    "full": Budget(100, {0.01: 80, 0.1: 60, 1.0: 40}, linear_epochs=200),
    # Fine-tuning exactly as `bell-edge finetune` runs it by default, as a user would.
    "cli": Budget(
        BUDGET_EPOCHS["long"],
        dict.fromkeys((0.01, 0.1, 1.0), FinetuneConfig.epochs),
        linear_epochs=FinetuneConfig.epochs,
        patience=FinetuneConfig.patience,
    ),
}


def _epochs(budget: Budget, fraction: float) -> int:
    nearest = min(budget.finetune_epochs, key=lambda f: abs(np.log(f) - np.log(fraction)))
    return budget.finetune_epochs[nearest]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stage(folder: Path, key: str, build: Callable[[bool], None], log: list[str]) -> None:
    """Run `build(resume)` unless `folder` holds a finished stage of the same key."""
    record = folder / STAGE
    done = (folder / "summary.json").is_file() and record.is_file()
    old = json.loads(record.read_text())["key"] if record.is_file() else None
    if done and old == key:
        log.append(f"{folder.name}: reused (same config and inputs)")
        return
    resume = old == key and (folder / "checkpoint.pt").is_file()
    why = "resumed" if resume else ("config or inputs changed" if old else "new")
    log.append(f"{folder.name}: {'run' if not resume else 'resumed'} ({why})")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(record, {"key": key})
    (folder / "summary.json").unlink(missing_ok=True)
    build(resume)


def pretrain_stage(
    folders: list[Path], run: Path, cfg: PretrainConfig, log: list[str], progress: bool
) -> Path:
    corpus = load_corpus(folders, cfg.preprocess, cfg.split, cfg.data_fraction, cfg.seed, False)
    key = _key(config_hash(cfg), [s["cache_key"] for s in corpus.manifest()])
    stage(run, key, lambda resume: pretrain(folders, run, cfg, resume=resume, force=True,
                                            progress=progress), log)  # fmt: skip
    return run


def init_source(init: str | Path, flag: str = "--init") -> Path:
    """An `--init` (a run, an encoder file or a shipped name), checked before any work starts;
    `flag` names the option in the error."""
    path = pretrained.resolve_init(init, flag=flag)
    if not encoder_source(path).is_file():
        raise InputError(f"{path}: no {ENCODER} or {CHECKPOINT}; not a pretraining run")
    return path


def grid_data(
    data: Path,
    fractions: tuple[float, ...],
    ft_cfg: FinetuneConfig,
    folds: tuple[int, ...] | None,
    progress: bool,
):
    """The labeled cache and each fold's held-out records (`{None: None}` without folds), once
    the fractions, the tasks and the folds are known to fit the data: callers check before they
    spend time pretraining."""
    if bad := [f for f in fractions if not 0 < f <= 1]:
        raise InputError(f"--fractions: {bad[0]:g} is not a label fraction in (0, 1]")
    cache = data_cache.load(data, ft_cfg.preprocess, progress=progress, tasks=ft_cfg.tasks)
    if not cache.classes or (folds is None and len(cache.rows("val")) == 0):
        raise InputError(f"{data}: the experiment needs a labeled folder with a val split")
    holdouts: dict[int | None, list[str] | None] = {None: None}
    if folds is not None:
        by_fold = record_folds(data)
        if missing := sorted(set(folds) - set(by_fold.values())):
            have = ", ".join(map(str, sorted(set(by_fold.values()))))
            raise InputError(f"--kfold: {data} has no strat_fold {missing[0]} (it has {have})")
        holdouts = {k: sorted(r for r, f in by_fold.items() if f == k) for k in folds}
    return cache, holdouts


def run_grid(
    data: Path,
    out: Path,
    inits: dict[str, Path | None],
    fractions: tuple[float, ...],
    seeds: int,
    modes: tuple[str, ...],
    ft_cfg: FinetuneConfig,
    plan: Budget,
    folds: tuple[int, ...] | None,
    log: list[str],
    progress: bool,
    recipes: dict[str, FinetuneConfig] | None = None,
) -> list[dict]:
    """Fine-tune every init on the same subsets; one result row per run. `recipes` gives an
    init its own fine-tuning config (default `ft_cfg`)."""
    cache, holdouts = grid_data(data, fractions, ft_cfg, folds, progress)
    init_keys = {
        name: file_sha256(encoder_source(path)) if path else SCRATCH for name, path in inits.items()
    }
    jobs = [
        (name, mode, f, s, k)
        for k in holdouts for f in fractions for s in range(seeds)
        for name in inits for mode in modes
    ]  # fmt: skip
    results = []
    for name, mode, fraction, seed, fold in tqdm(jobs, desc="label efficiency", unit="run",
                                                 disable=not progress):  # fmt: skip
        suffix = f"f{fraction:g}-s{seed}" + ("" if fold is None else f"-k{fold}")
        subset = _subset(cache, fraction, seed, holdouts[fold], out / "subsets" / f"{suffix}.json")
        run = out / "runs" / f"{name}-{mode}-{suffix}"
        epochs = plan.linear_epochs if mode == "linear" else _epochs(plan, fraction)
        base = (recipes or {}).get(name, ft_cfg)
        cfg = replace(base, mode=mode, label_fraction=fraction, seed=seed, epochs=epochs,
                      patience=plan.patience or max(5, epochs // 3))  # fmt: skip
        key = _key(config_hash(cfg), init_keys[name], file_sha256(subset), cache.meta["key"])
        init = inits[name]
        stage(run, key, lambda resume, run=run, cfg=cfg, init=init, subset=subset, fold=fold:
              finetune(cache.root, run, cfg, init=init, subset=subset, force=True, progress=False,
                       holdout=holdouts[fold], resume=resume), log)  # fmt: skip
        summary = json.loads((run / "summary.json").read_text())
        val = summary["val"]
        results.append({
            "init": name, "mode": mode, "fraction": fraction, "seed": seed, "fold": fold,
            "macro_auroc": val["macro_auroc"], "macro_auprc": val["macro_auprc"],
            "per_class": {c: v["auroc"] for c, v in val["per_class"].items()},
            "train_records": summary["train_records"], "best_epoch": summary["best_epoch"],
            "run": str(run.relative_to(out)),
        })  # fmt: skip
    return results


def _subset(cache, fraction: float, seed: int, holdout: list[str] | None, path: Path) -> Path:
    """One stratified subset manifest per (fraction, seed, fold), written once and shared."""
    if not path.is_file():
        rows = None
        if holdout is not None:
            pool = np.concatenate([cache.rows("train"), cache.rows("val")])
            rows = pool[~np.isin(cache.record_ids[pool], np.asarray(holdout, dtype=str))]
        write_label_subset(cache, fraction, seed, path, rows)
    return path


def paired_gains(
    results: list[dict], out: Path, baseline: str = SCRATCH, scorers: tuple | None = None
) -> list[dict]:
    """Gain of each init over `baseline` (points of macro AUROC) with a paired bootstrap CI.

    Per (init, mode, fraction): on each evaluation split (the val split, or each fold), the
    seed-mean AUROC difference under the same record resamples; folds are averaged.
    `scorers`: the `(macro, macro_boot)` of `run_scorers()`, to share between calls.
    """
    groups: dict[tuple, dict[tuple, Path]] = {}
    for r in results:
        groups.setdefault((r["init"], r["mode"], r["fraction"]), {})[r["seed"], r["fold"]] = (
            out / r["run"] / VAL_SCORES
        )
    # The baseline's runs are scored once, however many inits are compared with them.
    macro, macro_boot = scorers or run_scorers()
    gains = []
    for (name, mode, fraction), runs in sorted(groups.items(), key=str):
        base = groups.get((baseline, mode, fraction))
        if name == baseline or base is None or set(base) != set(runs):
            continue
        folds = sorted({k for _, k in runs}, key=str)
        per_fold_point, per_fold_boot = [], []
        for fold in folds:
            seeds = sorted(s for s, k in runs if k == fold)
            diff = [macro(runs[s, fold]) - macro(base[s, fold]) for s in seeds]
            boot = [macro_boot(runs[s, fold]) - macro_boot(base[s, fold]) for s in seeds]
            per_fold_point.append(np.mean(diff))
            per_fold_boot.append(_nanmean(boot))
        boot = _nanmean(per_fold_boot)
        gains.append({
            "init": name, "baseline": baseline, "mode": mode, "fraction": fraction,
            "folds": len(folds),
            "seeds": len(runs) // len(folds),
            "gain_points": 100 * float(np.mean(per_fold_point)),
            "ci95_points": [100 * float(np.nanpercentile(boot, q)) for q in (2.5, 97.5)],
            "share_of_resamples_le_0": float(np.mean(boot[np.isfinite(boot)] <= 0)),
        })  # fmt: skip
    return gains


def _nanmean(rows: list[np.ndarray]) -> np.ndarray:
    """Mean over rows per resample; NaN, without a warning, where no row could score it (a
    class with one positive drops out of a resample that misses it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(rows, axis=0)


def run_scorers(columns: tuple[int, ...] | None = None) -> tuple[Callable, Callable]:
    """Macro AUROC and its bootstrap of a run's val scores, each computed once per file;
    over the classes `columns` only, when given."""
    return (functools.cache(lambda path: _macro(path, columns)),
            functools.cache(lambda path: _macro_boot(path, columns)))  # fmt: skip


def pretrained_pairs(results: list[dict], out: Path, scorers: tuple) -> list[dict]:
    """The gain of each pretrained init over each later one (BELL over BYOL, say)."""
    names = list(dict.fromkeys(r["init"] for r in results if r["init"] != SCRATCH))
    gains = []
    for i, baseline in enumerate(names):
        rows = [r for r in results if r["init"] in names[: i + 1]]
        gains += paired_gains(rows, out, baseline, scorers)
    return gains


def _scores(path: Path, columns: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        y, s = z["labels"] > 0.5, z["scores"]
    return (y, s) if columns is None else (y[:, list(columns)], s[:, list(columns)])


def _macro(path: Path, columns: tuple[int, ...] | None = None) -> float:
    """Macro AUROC over the classes that have positives and negatives on this split."""
    y, s = _scores(path, columns)
    ok = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    return float(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in ok]))


def _macro_boot(path: Path, columns: tuple[int, ...] | None = None) -> np.ndarray:
    """Macro AUROC under RESAMPLES seeded resamples: the same draws for every run of a split."""
    y, s = _scores(path, columns)
    ok = (y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))
    return bootstrap_aurocs(y[:, ok], s[:, ok], RESAMPLES, seed=0).mean(axis=1)


def summarize(results: list[dict]) -> dict[tuple[str, str, float], tuple[float, float, int]]:
    """(init, mode, fraction) -> (mean, std, n) of macro AUROC over seeds (and folds)."""
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in results:
        groups.setdefault((r["init"], r["mode"], r["fraction"]), []).append(r["macro_auroc"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def label_efficiency(
    data: str | Path,
    out: str | Path,
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0),
    seeds: int = 5,
    budget: str = "small",
    pretrain_config: PretrainConfig | None = None,
    finetune_config: FinetuneConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    inits: dict[str, str | Path] | None = None,
    pretrain_data: list[str | Path] | None = None,
    modes: tuple[str, ...] = MODES,
    folds: tuple[int, ...] | None = None,
    recipes: dict[str, FinetuneConfig] | None = None,
    tasks: str | tuple[str, ...] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """BELL, BYOL and random init on the same subsets; `inits` names ready encoders (a run, an
    `encoder.pt`) instead of pretraining them here, on `pretrain_data` (default: `data`).
    `recipes` gives an init its own fine-tuning config (the others get `finetune_config`).
    `out` is claimed (`files.claim_folder`): a folder bell-edge did not write needs `force`."""
    if budget not in BUDGETS:
        raise InputError(f"--budget {budget}: use {', '.join(BUDGETS)}")
    plan, out, log = BUDGETS[budget], Path(out), []
    started = time.perf_counter()
    pre_cfg = replace(pretrain_config or PretrainConfig(), epochs=plan.pretrain_epochs,
                      device=device)  # fmt: skip
    ft_cfg = replace(finetune_config or FinetuneConfig(), device=device,
                     tasks=parse_tasks(tasks) or None)  # fmt: skip
    # A run, an encoder file, or the name of a shipped encoder (verified against its hash).
    encoders = {name: init_source(path) for name, path in (inits or {}).items()}
    methods = () if inits else ("bell", "byol")  # pretrained here
    names = [*encoders, *methods, SCRATCH]
    if unknown := sorted(set(recipes or {}) - set(names)):
        raise InputError(f"--recipe {', '.join(unknown)}: no such init (inits: {', '.join(names)})")
    grid_data(Path(data), fractions, ft_cfg, folds, progress)  # before any pretraining
    claim_folder(out, force)
    folders = [Path(p) for p in (pretrain_data or [data])]
    for method in methods:
        cfg = replace(pre_cfg, method=method)
        encoders[method] = pretrain_stage(folders, out / "pretrain" / method, cfg, log, progress)
    encoders[SCRATCH] = None
    recipes = {k: replace(v, device=device, tasks=ft_cfg.tasks) for k, v in (recipes or {}).items()}
    results = run_grid(Path(data), out, encoders, fractions, seeds, modes, ft_cfg, plan, folds, log,
                       progress, recipes)  # fmt: skip
    scorers = run_scorers()
    report = {
        "data": str(data),
        "budget": budget,
        "fractions": list(fractions),
        "seeds": seeds,
        "folds": list(folds) if folds else None,
        "inits": {k: str(v) if v else SCRATCH for k, v in encoders.items()},
        "finetune_config": to_dict(ft_cfg),
        "recipes": {k: to_dict(v) for k, v in recipes.items()},
        "results": results,
        "gains": paired_gains(results, out, scorers=scorers),
        "between_pretrained": pretrained_pairs(results, out, scorers),
        "stages": log,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / "results.json", report)
    write_report(report, out)
    return report


def data_curve(
    data: str | Path,
    out: str | Path,
    pretrain_data: list[str | Path],
    corpus_fractions: tuple[float, ...] = (0.25, 0.5, 1.0),
    label_fraction: float = 0.1,
    seeds: int = 5,
    budget: str = "long",
    pretrain_config: PretrainConfig | None = None,
    finetune_config: FinetuneConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    ready: dict[float, str | Path] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """The gain at `label_fraction` labels against the share of the pretraining corpus.

    `ready` maps a corpus fraction to an encoder already pretrained with the same recipe. `out`
    is claimed as in `label_efficiency`.
    """
    plan, out, log = BUDGETS[budget], Path(out), []
    if bad := [f for f in corpus_fractions if not 0 < f <= 1]:
        raise InputError(f"--corpus-fractions: {bad[0]:g} is not a share in (0, 1]")
    ready = {share: init_source(path, "--ready") for share, path in (ready or {}).items()}
    if stray := sorted(set(ready) - set(corpus_fractions)):
        raise InputError(f"--ready {stray[0]:g}: not one of the corpus fractions")
    claim_folder(out, force)
    pre_cfg = replace(pretrain_config or PretrainConfig(), epochs=plan.pretrain_epochs,
                      device=device)  # fmt: skip
    folders = [Path(p) for p in pretrain_data]
    encoders: dict[str, Path | None] = {}
    windows = {}
    for share in corpus_fractions:
        name = f"{pre_cfg.method}-corpus{share:g}"
        cfg = replace(pre_cfg, data_fraction=share)
        if share in ready:
            encoders[name] = ready[share]
        else:
            encoders[name] = pretrain_stage(folders, out / "pretrain" / name, cfg, log, progress)
        corpus = load_corpus(folders, cfg.preprocess, cfg.split, share, cfg.seed, False)
        windows[name] = len(corpus)
    encoders[SCRATCH] = None
    ft_cfg = replace(finetune_config or FinetuneConfig(), device=device)
    results = run_grid(Path(data), out, encoders, (label_fraction,), seeds, ("full",), ft_cfg,
                       plan, None, log, progress)  # fmt: skip
    gains = paired_gains(results, out)
    for g in gains:
        g["corpus_windows"] = windows[g["init"]]
    report = {"data": str(data), "label_fraction": label_fraction, "seeds": seeds,
              "pretrain_data": [str(f) for f in folders], "gains": gains, "results": results,
              "stages": log}  # fmt: skip
    write_json(out / "data_curve.json", report)
    _plot_curve(gains, label_fraction, out / "data_curve.png")
    return report


def write_report(report: dict, out: Path) -> None:
    results, fractions = report["results"], report["fractions"]
    table = summarize(results)
    names = list(report["inits"])
    modes = sorted({r["mode"] for r in results}, key=MODES.index)
    where = f"folds {report['folds']} (strat_fold k-fold)" if report["folds"] else "the val split"
    lines = [
        "# Label efficiency: pretrained inits vs random init",
        "",
        f"Data `{report['data']}`, budget `{report['budget']}`, {report['seeds']} seeds, "
        f"{report['seconds']:.0f} s in all. Macro AUROC on {where}, mean ± std over runs.",
        "Inits: " + ", ".join(f"{k} = `{v}`" for k, v in report["inits"].items()) + ".",
        *_recipe_lines(report),
        "",
        "| init | mode | " + " | ".join(f"{f:g} labels" for f in fractions) + " |",
        "|---|---|" + "---|" * len(fractions),
    ]
    for name in names:
        for mode in modes:
            cells = [
                f"{table[name, mode, f][0]:.4f} ± {table[name, mode, f][1]:.4f}"
                if (name, mode, f) in table else "-"
                for f in fractions
            ]  # fmt: skip
            lines.append(f"| {name} | {mode} | " + " | ".join(cells) + " |")
    cnn = [f"{REFERENCE_CNN[f]['val']:.3f}" if f in REFERENCE_CNN else "-" for f in fractions]
    lines.append("| reference plain CNN (REFERENCES.md) | full | " + " | ".join(cnn) + " |")
    lines += ["", "Gain over random init of the same architecture and mode, points of macro "
              "AUROC, with a paired bootstrap 95% CI (1,000 resamples of the evaluation records):",
              "", "| init | mode | labels | gain | 95% CI | resamples with gain <= 0 |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [_gain_row(g, g["init"]) for g in report["gains"]]
    if report.get("between_pretrained"):
        lines += ["", "Between pretrained inits, same CI:", "",
                  "| init | over | mode | labels | gain | 95% CI | resamples with gain <= 0 |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [_gain_row(g, f"{g['init']} | {g['baseline']}")
                  for g in report["between_pretrained"]]  # fmt: skip
    lines += ["", "Stages:", "", *[f"- {s}" for s in report["stages"][:200]]]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    _plot(table, names, modes, fractions, out / "label_efficiency.png")


def _gain_row(g: dict, who: str) -> str:
    """A report row: `who` (the init, or "init | baseline"), mode, labels, gain, CI, share <= 0."""
    lo, hi = g["ci95_points"]
    return (
        f"| {who} | {g['mode']} | {g['fraction']:g} | {g['gain_points']:+.2f} | "
        f"[{lo:+.2f}, {hi:+.2f}] | {100 * g['share_of_resamples_le_0']:.1f}% |"
    )


def _recipe_lines(report: dict) -> list[str]:
    """The fine-tuning fields where an init's recipe differs from the default one."""
    default = report["finetune_config"]
    lines = []
    for name, recipe in report.get("recipes", {}).items():
        changed = {k: v for k, v in recipe.items() if v != default.get(k) and k != "device"}
        lines.append(f"Recipe of {name}: " + (", ".join(f"{k} = {v}" for k, v in changed.items())
                                              or "the default") + ".")  # fmt: skip
    return lines


def _plot(table, names, modes, fractions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, mode in zip(axes[0], modes, strict=True):
        for name in names:
            keys = [f for f in fractions if (name, mode, f) in table]
            ax.errorbar(keys, [table[name, mode, f][0] for f in keys],
                        yerr=[table[name, mode, f][1] for f in keys], marker="o", capsize=3,
                        label=name)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("label fraction")
        ax.set_title(f"{mode} {'probe' if mode == 'linear' else 'fine-tuning'}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("macro AUROC")
    axes[0][0].legend()
    _save_figure(fig, path)


def _plot_curve(gains: list[dict], label_fraction: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gains = sorted(gains, key=lambda g: g["corpus_windows"])
    x = [g["corpus_windows"] for g in gains]
    y = [g["gain_points"] for g in gains]
    err = np.array([[g["gain_points"] - g["ci95_points"][0], g["ci95_points"][1] - g["gain_points"]]
                    for g in gains]).T  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("pretraining windows")
    ax.set_ylabel(f"gain over random init at {label_fraction:g} labels (points)")
    ax.grid(alpha=0.3)
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
