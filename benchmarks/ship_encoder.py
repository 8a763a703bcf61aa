"""Ship a finished pretraining run as a package encoder: bell_edge/models/weights/NAME/.

The manifest is filled from the run's own files (config.toml, corpus.json, summary.json) and from
the label-efficiency report that evaluated it (results.json of `bell-edge experiment
label-efficiency`); the model card is written from the same facts.

    python benchmarks/ship_encoder.py RUN --name NAME --results EXP/results.json [--commit C]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bell_edge.config import tomllib
from bell_edge.models.pretrained import WEIGHTS, pack
from bell_edge.train.experiment import summarize


def rows_of(results: dict, init: str) -> dict:
    """Mean ± std of `init` and of random init only (a report may hold other encoders too)."""
    return {k: v for k, v in sorted(summarize(results["results"]).items())
            if k[0] in (init, "scratch")}  # fmt: skip


def shipped_name(init: str) -> str:
    """`NAME` for a shipped encoder's file, else the init as the report gives it."""
    path = Path(init)
    return path.parent.name if path.parent.parent == WEIGHTS else init


def against_others(results: dict, init: str) -> list[dict]:
    """Paired gains of `init` over the report's other pretrained inits, named by their files."""
    inits = results.get("inits", {})
    out = []
    for g in results.get("between_pretrained", []):
        if init not in (g["init"], g["baseline"]):
            continue
        sign = 1 if g["init"] == init else -1
        other = g["baseline"] if sign == 1 else g["init"]
        lo, hi = (sign * c for c in g["ci95_points"])
        out.append({"over": shipped_name(inits.get(other, other)), "mode": g["mode"],
                    "fraction": g["fraction"], "gain_points": sign * g["gain_points"],
                    "ci95_points": sorted([lo, hi])})  # fmt: skip
    return out


def evaluation(results: dict, init: str) -> str:
    """One report's tables: mean ± std of `init` and random init, and the paired gains."""
    rows = [
        f"| {'this encoder' if who == init else 'random init'} | {mode} | {fraction:g} | "
        f"{mean:.4f} ± {std:.4f} | {n} |"
        for (who, mode, fraction), (mean, std, n) in rows_of(results, init).items()
    ]
    gains = [
        f"| {g['mode']} | {g['fraction']:g} | {g['gain_points']:+.2f} | "
        f"[{g['ci95_points'][0]:+.2f}, {g['ci95_points'][1]:+.2f}] |"
        for g in results["gains"]
        if g["init"] == init
    ]
    others = [
        f"| over `{g['over']}` | {g['mode']} | {g['fraction']:g} | {g['gain_points']:+.2f} | "
        f"[{g['ci95_points'][0]:+.2f}, {g['ci95_points'][1]:+.2f}] |"
        for g in against_others(results, init)
    ]
    if others:
        head = ["", "Gain over the other pretrained encoders in the same report:", "",
                "| | mode | labels | gain | 95% CI |", "|---|---|---|---|---|"]  # fmt: skip
        others = head + others
    where = f"strat_folds {results['folds']} held out in turn" if results.get("folds") else "val"
    return "\n".join([
        f"## Evaluation (`{results['data']}`, {where}, {results['seeds']} seed(s), macro AUROC)",
        "| init | mode | labels | macro AUROC | runs |", "|---|---|---|---|---|", *rows, "",
        "Gain over random init of the same architecture (points, paired bootstrap 95% CI):", "",
        "| mode | labels | gain | 95% CI |", "|---|---|---|---|", *gains, *others, "",
    ])  # fmt: skip


def card(name: str, run: Path, reports: list[dict], init: str) -> str:
    corpus = json.loads((run / "corpus.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    recipe = tomllib.loads((run / "config.toml").read_text())
    sources = "\n".join(
        f"- `{s['path']}` ({s['layout']}): {s['records']} records, {s['windows']} windows; "
        f"index sha256 `{s['index_sha256'][:16]}...`"
        for s in corpus
    )
    evaluations = "\n".join(evaluation(r, init) for r in reports)
    return f"""# {name}

A BELL-pretrained multi-branch 1-D ResNet encoder (one branch per lead, 12 leads, 100 Hz,
10-s windows), produced by `bell-edge pretrain` alone. **No label reached it**: it saw the
train split of PTB-XL-style folders and unlabeled records, never a val or test record.

## Training data
{sources}

## Recipe
{summary["steps"]} steps ({summary["epochs"]} epochs of {summary["windows"]} windows), loss
`gamma * intra + (1 - gamma) * inter` with gamma {recipe["gamma"]:g}, EMA
momentum from {summary["momentum_start"]:.4f} (cosine to 1); the full `PretrainConfig` is in
`manifest.json` under `recipe`. BatchNorm statistics re-estimated on clean windows.

{evaluations}
## Intended use and limits
A starting point for fine-tuning 12-lead (or masked reduced-lead) ECG classifiers with few
labels, in research. It is not a medical device. It was pretrained on about two thousand
records from a handful of sources; expect smaller gains on other populations and devices. The
k-fold estimate (folds 1-8 were seen unlabeled in pretraining) is the one to trust over val.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument(
        "--results",
        type=Path,
        required=True,
        action="append",
        help="A label-efficiency results.json (repeat: val, k-fold).",
    )
    parser.add_argument("--init", default="bell", help="The report's name for this encoder.")
    parser.add_argument("--commit", default=None, help="The commit the run was trained at.")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.results]
    keep = [
        {
            "data": r["data"],
            "seeds": r["seeds"],
            "folds": r.get("folds"),
            "summary": [
                {
                    "init": k[0],
                    "mode": k[1],
                    "fraction": k[2],
                    "mean": v[0],
                    "std": v[1],
                    "runs": v[2],
                }
                for k, v in rows_of(r, args.init).items()
            ],  # fmt: skip
            "gains_over_random_init": [g for g in r["gains"] if g["init"] == args.init],
            "gains_over_other_encoders": against_others(r, args.init),
        }
        for r in reports
    ]
    out = pack(args.run, args.name, {"evaluations": keep},
               card(args.name, args.run, reports, args.init),
               force=args.force, commit=args.commit)  # fmt: skip
    print(f"{out}: shipped")


if __name__ == "__main__":
    main()
