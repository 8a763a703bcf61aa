"""The AF alarm's RR-irregularity threshold, fitted on the PTB-XL train split (never on cpsc2021).

For every record of `ptbxl100-release`: the runtime's own beat detector (`runtime.beats.detect`)
on lead II, then `runtime.alarms.irregularity` (median |RR[i] - RR[i-k]| / median RR at the most
regular lag k of 1-3) of its RR intervals; records with fewer than 5 intervals are left out. The
threshold is the one with the highest Youden's J (sensitivity + specificity - 1) for AFIB
against every other train record (strat_fold 1-8; sinus arrhythmia and ectopic beats included).
The val records (fold 9) check it. The lag-1 measure (median |successive difference| / median
RR, the alarm's feature before the lags) is reported beside it for comparison, and so is the
nearest-RR spread (each RR's distance to its nearest other RR, median over RRs / median RR): a
candidate against rhythms whose RR jumps between a few levels, which AF does not.

    python benchmarks/af_irregularity.py --out benchmarks/results/af_irregularity
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
from pathlib import Path

import numpy as np
import wfdb
from sklearn.metrics import roc_auc_score

from bell_edge.bench.machine import describe, summary
from bell_edge.runtime.alarms import AlarmConfig, irregularity
from bell_edge.runtime.beats import detect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl100-release"
TRAIN_FOLDS = range(1, 9)
MIN_INTERVALS = 5
STATEMENTS = ("SARRH", "SVARR", "BIGU")  # irregular rhythms that are not AF


def measure(root: Path) -> dict[str, np.ndarray]:
    cols: dict[str, list] = {k: [] for k in ("train", "af", "codes", *FEATURES)}
    with (root / "ptbxl_database.csv").open() as f:
        for row in csv.DictReader(f):
            rec = wfdb.rdrecord(str(root / row["filename_lr"]), channel_names=["II"])
            beats = detect(np.nan_to_num(rec.p_signal[:, 0]), float(rec.fs))
            rr = np.diff(beats) / rec.fs
            if len(rr) < MIN_INTERVALS:
                continue
            codes = ast.literal_eval(row["scp_codes"])
            cols["train"].append(int(row["strat_fold"]) in TRAIN_FOLDS)
            cols["af"].append("AFIB" in codes)
            for name, (_, feature) in FEATURES.items():
                cols[name].append(feature(rr))
            cols["codes"].append(" ".join(codes))
    return {k: np.array(v) for k, v in cols.items()}


def nearest_spread(rr: np.ndarray) -> float:
    gaps = np.abs(rr[:, None] - rr[None, :])
    np.fill_diagonal(gaps, np.inf)
    return float(np.median(gaps.min(axis=1)) / np.median(rr))


# name: (label in the report, feature of the RR intervals)
FEATURES = {
    "lags": ("lags 1-3 (the alarm's)", irregularity),
    "lag1": ("lag 1 only (before)", lambda rr: irregularity(rr, lags=1)),
    "nearest": ("nearest-RR spread (candidate)", nearest_spread),
}


def rates(values: np.ndarray, af: np.ndarray, t: float) -> tuple[float, float]:
    return float((values[af] >= t).mean()), float((values[~af] >= t).mean())


def youden(values: np.ndarray, af: np.ndarray) -> float:
    return float(max(np.unique(values), key=lambda t: np.subtract(*rates(values, af, t))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    m = measure(args.data)
    tr, va = m["train"], ~m["train"]
    features = {}
    for name in FEATURES:
        x = m[name]
        t = youden(x[tr], m["af"][tr])
        features[name] = {
            "youden_threshold": t,
            "train_auroc": float(roc_auc_score(m["af"][tr], x[tr])),
            "val_auroc": float(roc_auc_score(m["af"][va], x[va])),
            "train_rates": rates(x[tr], m["af"][tr], t),
            "val_rates": rates(x[va], m["af"][va], t),
            "flagged_non_af": {
                s: float((x[tr & ~m["af"] & (np.char.find(m["codes"], s) >= 0)] >= t).mean())
                for s in STATEMENTS
            },
        }
    default = AlarmConfig().af_irregularity
    result = {
        "records": {"train": int(tr.sum()), "val": int(va.sum())},
        "af_records": {"train": int(m["af"][tr].sum()), "val": int(m["af"][va].sum())},
        "features": features,
        "alarm_default": default,
        "default_rates": rates(m["lags"][tr], m["af"][tr], default),
        "machine": describe(),
    }
    lines = [
        "# AF alarm: the RR-irregularity threshold, fitted on the PTB-XL train split",
        "",
        "`python benchmarks/af_irregularity.py --out benchmarks/results/af_irregularity`",
        "",
        f"`ptbxl100-release`, 10-s records, lead II at 100 Hz, the runtime's beats: "
        f"{result['records']['train']} train records (strat_fold 1-8, "
        f"{result['af_records']['train']} with AFIB) fit the threshold, "
        f"{result['records']['val']} val records ({result['af_records']['val']} AFIB) check it. "
        f"Machine: {summary(result['machine'])}.",
        "",
        "| irregularity | AUROC train | AUROC val | Youden threshold (train) | Se / FPR train "
        "| Se / FPR val | flagged without AF, train: " + ", ".join(STATEMENTS) + " |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in features.items():
        (se, fp), (vse, vfp) = f["train_rates"], f["val_rates"]
        flagged = ", ".join(f"{100 * v:.0f}%" for v in f["flagged_non_af"].values())
        lines.append(
            f"| {FEATURES[name][0]} | {f['train_auroc']:.4f} | {f['val_auroc']:.4f} | "
            f"{f['youden_threshold']:.4f} | {100 * se:.1f}% / {100 * fp:.1f}% | "
            f"{100 * vse:.1f}% / {100 * vfp:.1f}% | {flagged} |"
        )
    se, fp = result["default_rates"]
    lines += [
        "",
        f"- `AlarmConfig.af_irregularity` is {default:g}: train sensitivity {100 * se:.1f}%, "
        f"other train records {100 * fp:.1f}% (single 10-s records; the alarm also needs the "
        "model and holds for its debounce time).",
    ]
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
