"""Pair two label-efficiency experiments run by run, when their run folders are gone.

`bell-edge experiment label-efficiency` bootstraps the val records of each run, which needs the
runs' score files. Experiments committed from earlier sessions keep only `results.json`: one
macro AUROC per (init, mode, fraction, seed, fold). Two of them share their label subsets when
an init they both ran (random init, say) scored bitwise the same in every run; this script checks
that, then pairs INIT_A's runs with INIT_B's on the same (mode, fraction, seed, fold) and
bootstraps the mean difference over those pairs (1,000 resamples). The interval therefore
covers seed-to-seed and fold-to-fold spread, not the resampling of records within a run.

    python benchmarks/paired_runs.py A/results.json:bellg05 B/results.json:byol --anchor scratch
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESAMPLES = 1000


def runs(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def by_run(rows: list[dict], init: str) -> dict[tuple, float]:
    return {
        (r["mode"], r["fraction"], r["seed"], r["fold"]): r["macro_auroc"]
        for r in rows
        if r["init"] == init
    }


def anchor_matches(a: list[dict], b: list[dict], anchor: str) -> int:
    """How many runs of `anchor` the two experiments share; exits when any of them differs."""
    ra, rb = by_run(a, anchor), by_run(b, anchor)
    shared = ra.keys() & rb.keys()
    differ = [k for k in shared if ra[k] != rb[k]]
    if not shared or differ:
        sys.exit(f"error: {anchor} runs differ ({len(differ)} of {len(shared)} shared): "
                 "the experiments do not share their label subsets")  # fmt: skip
    return len(shared)


def paired(ra: dict[tuple, float], rb: dict[tuple, float]) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for mode, fraction in sorted({k[:2] for k in ra.keys() & rb.keys()}):
        keys = sorted(k for k in ra.keys() & rb.keys() if k[:2] == (mode, fraction))
        diff = 100 * np.array([ra[k] - rb[k] for k in keys])
        boot = diff[rng.integers(0, len(diff), (RESAMPLES, len(diff)))].mean(axis=1)
        rows.append({
            "mode": mode, "fraction": fraction, "pairs": len(keys),
            "mean_a": float(np.mean([ra[k] for k in keys])),
            "mean_b": float(np.mean([rb[k] for k in keys])),
            "gain_points": float(diff.mean()),
            "ci95_points": [float(np.percentile(boot, q)) for q in (2.5, 97.5)],
            "share_of_resamples_le_0": float(np.mean(boot <= 0)),
            "pairs_won": int((diff > 0).sum()),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="RESULTS.json:INIT, the init whose gain is reported")
    parser.add_argument("b", help="RESULTS.json:INIT, the init it is compared with")
    parser.add_argument("--anchor", default="scratch", help="init both experiments ran")
    args = parser.parse_args()
    (path_a, init_a), (path_b, init_b) = (s.rsplit(":", 1) for s in (args.a, args.b))
    a, b = runs(Path(path_a)), runs(Path(path_b))
    shared = anchor_matches(a, b, args.anchor)
    print(f"{args.anchor}: {shared} shared runs, every AUROC identical: the same label subsets.\n")
    print(f"| labels | {init_a} | {init_b} | gain, points | 95% CI | resamples <= 0 | pairs won |")
    print("|---|---|---|---|---|---|---|")
    for r in paired(by_run(a, init_a), by_run(b, init_b)):
        lo, hi = r["ci95_points"]
        cells = [
            f"{r['fraction']:g} ({r['mode']}, {r['pairs']} pairs)",
            f"{r['mean_a']:.4f}",
            f"{r['mean_b']:.4f}",
            f"{r['gain_points']:+.2f}",
            f"[{lo:+.2f}, {hi:+.2f}]",
            f"{100 * r['share_of_resamples_le_0']:.1f}%",
            f"{r['pairs_won']}/{r['pairs']}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
