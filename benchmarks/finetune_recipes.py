"""Which fine-tuning recipe lets a pretrained encoder beat random init? (issue #4 tuning)

Fine-tunes each init (pretraining runs and random init) with each recipe at one label fraction
over several seeds, all on the same stratified subsets, and reports val macro AUROC.

    python benchmarks/finetune_recipes.py --data ../shared/data/ptbxl100 \
        --init bell=/work/exp/le-small/pretrain/bell --out /work/exp/recipes

Finished runs are reused, so an interrupted sweep resumes. Writes OUT/recipes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bell_edge.config import FinetuneConfig, PretrainConfig, load_toml, replace
from bell_edge.data import cache as data_cache
from bell_edge.train.finetune import finetune, write_label_subset

RECIPES = {
    "base": {},  # the label-efficiency small budget's recipe at 10% labels until session 2
    "lpft": {"probe_epochs": 60},
    "enc-lr-1": {"encoder_lr_scale": 1.0},
    "long": {"epochs": 60, "patience": 20},
    "lpft-long": {"probe_epochs": 60, "epochs": 60, "patience": 20},
}
BASE = {"epochs": 20, "patience": 6, "encoder_lr_scale": 0.3, "probe_epochs": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--init", action="append", default=[], help="NAME=PRETRAIN_RUN")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--report-only", action="store_true",
                        help="Tabulate the finished runs in OUT/runs; train nothing.")  # fmt: skip
    args = parser.parse_args()
    if args.report_only:
        write(finished(args.out), args)
        return

    inits = {"scratch": None} | dict(item.split("=", 1) for item in args.init)
    cache = data_cache.load(args.data, FinetuneConfig().preprocess)
    results = []
    for recipe in args.recipes.split(","):
        for name, init in inits.items():
            if init is None and "probe_epochs" in RECIPES[recipe]:
                continue  # LP-FT needs a pretrained encoder
            for seed in range(args.seeds):
                subset = args.out / "subsets" / f"f{args.fraction:g}-s{seed}.json"
                if not subset.is_file():
                    write_label_subset(cache, args.fraction, seed, subset)
                run = args.out / "runs" / f"{name}-{recipe}-f{args.fraction:g}-s{seed}"
                if not (run / "summary.json").is_file():
                    cfg = replace(FinetuneConfig(), mode="full", label_fraction=args.fraction,
                                  seed=seed, **(BASE | RECIPES[recipe]))  # fmt: skip
                    started = time.perf_counter()
                    finetune(cache.root, run, cfg, init=init, subset=subset, force=True,
                             progress=False)  # fmt: skip
                    print(f"{run.name}: {time.perf_counter() - started:.0f} s", flush=True)
                summary = json.loads((run / "summary.json").read_text())
                results.append({"init": name, "recipe": recipe, "seed": seed,
                                 "macro_auroc": summary["val"]["macro_auroc"],
                                 "best_epoch": summary["best_epoch"]})  # fmt: skip
    write(results, args)


def finished(out: Path) -> list[dict]:
    """Results of every finished run, named `<init>-<recipe>-f<fraction>-s<seed>`."""
    results = []
    for summary_file in sorted(out.glob("runs/*/summary.json")):
        name = summary_file.parent.name
        seed = int(name.rsplit("-s", 1)[1])
        init, recipe = name.rsplit("-f", 1)[0].split("-", 1)
        summary = json.loads(summary_file.read_text())
        results.append({"init": init, "recipe": recipe, "seed": seed,
                        "macro_auroc": summary["val"]["macro_auroc"],
                        "best_epoch": summary["best_epoch"]})  # fmt: skip
    return results


def _pretrain_facts(run: Path) -> str:
    cfg = load_toml(PretrainConfig, run / "config.toml")
    return (f"{cfg.method}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
            f"EMA momentum from {cfg.momentum_base}, gamma {cfg.gamma}")  # fmt: skip


def write(results: list[dict], args) -> None:
    groups: dict[tuple[str, str], list[float]] = {}
    for r in results:
        groups.setdefault((r["init"], r["recipe"]), []).append(r["macro_auroc"])
    lines = [
        f"# Fine-tuning recipes at {args.fraction:g} labels",
        "",
        f"`python benchmarks/finetune_recipes.py --data {args.data} "
        + " ".join(f"--init {i}" for i in args.init)
        + f" --fraction {args.fraction:g} --seeds {args.seeds}`",
        "",
        f"Val macro AUROC, mean ± std over {args.seeds} seeds. Base recipe: {BASE}, "
        f"the rest of `FinetuneConfig` defaults.",
        "",
        "Pretraining runs: "
        + "; ".join(
            f"`{name}`: {_pretrain_facts(Path(path))}"
            for name, path in (item.split("=", 1) for item in args.init)
        )
        + ".",  # fmt: skip
        "",
        "| init | recipe | overrides | macro AUROC |",
        "|---|---|---|---|",
    ]
    for (init, recipe), values in groups.items():
        lines.append(f"| {init} | {recipe} | {RECIPES[recipe] or '-'} | "
                     f"{np.mean(values):.4f} ± {np.std(values):.4f} |")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipes.json").write_text(json.dumps(results, indent=1))
    (args.out / "recipes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
