"""The AF alarm's RR-irregularity threshold, fitted on the PTB-XL train split (never on cpsc2021).

For every train record (strat_fold 1-8) of `ptbxl100-release`: the runtime's own beat detector
(`runtime.beats.detect`) on lead II, then `runtime.alarms.irregularity` (median |successive RR
difference| / median RR) of its RR intervals; records with fewer than 5 intervals are left out.
The threshold is the one with the highest Youden's J (sensitivity + specificity - 1) for AFIB
against every other record (sinus arrhythmia and ectopic beats included).

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

from bell_edge.bench.machine import describe, summary
from bell_edge.runtime.alarms import AlarmConfig, irregularity
from bell_edge.runtime.beats import detect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl100-release"
TRAIN_FOLDS = range(1, 9)
MIN_INTERVALS = 5


def measure(root: Path) -> tuple[np.ndarray, np.ndarray]:
    values, af = [], []
    with (root / "ptbxl_database.csv").open() as f:
        for row in csv.DictReader(f):
            if int(row["strat_fold"]) not in TRAIN_FOLDS:
                continue
            rec = wfdb.rdrecord(str(root / row["filename_lr"]), channel_names=["II"])
            beats = detect(np.nan_to_num(rec.p_signal[:, 0]), float(rec.fs))
            rr = np.diff(beats) / rec.fs
            if len(rr) < MIN_INTERVALS:
                continue
            values.append(irregularity(rr))
            af.append("AFIB" in ast.literal_eval(row["scp_codes"]))
    return np.array(values), np.array(af)


def rates(values: np.ndarray, af: np.ndarray, t: float) -> tuple[float, float]:
    return float((values[af] >= t).mean()), float((values[~af] >= t).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    values, af = measure(args.data)
    best = max(np.unique(values), key=lambda t: np.subtract(*rates(values, af, t)))
    se, fpr = rates(values, af, best)
    default = AlarmConfig().af_irregularity
    result = {
        "records": int(len(af)), "af_records": int(af.sum()),
        "youden_threshold": float(best), "sensitivity": se, "false_positive_rate": fpr,
        "alarm_default": default, "default_rates": rates(values, af, default),
        "quantiles": {"af": np.quantile(values[af], [0.1, 0.25, 0.5]).tolist(),
                      "other": np.quantile(values[~af], [0.5, 0.9, 0.95]).tolist()},
        "machine": describe(),
    }  # fmt: skip
    lines = [
        "# AF alarm: the RR-irregularity threshold, fitted on the PTB-XL train split",
        "",
        "`python benchmarks/af_irregularity.py --out benchmarks/results/af_irregularity`",
        "",
        f"{result['records']} train records of `ptbxl100-release` (strat_fold 1-8; 10 s each, "
        f"lead II, 100 Hz), {result['af_records']} with AFIB. Irregularity: median |successive "
        "RR difference| / median RR of the runtime's beats. Machine: "
        f"{summary(result['machine'])}.",
        "",
        f"- Highest Youden's J at **{best:.4f}**: AFIB sensitivity {100 * se:.1f}%, "
        f"{100 * fpr:.1f}% of the other records at or above it (single 10-s records; the alarm "
        "also needs the model and holds for its debounce time).",
        f"- `AlarmConfig.af_irregularity` is {default:g}: sensitivity "
        f"{100 * result['default_rates'][0]:.1f}%, other records "
        f"{100 * result['default_rates'][1]:.1f}%.",
        "- Quantiles 10/25/50% of AFIB records: "
        + ", ".join(f"{q:.3f}" for q in result["quantiles"]["af"])
        + "; 50/90/95% of the others: "
        + ", ".join(f"{q:.3f}" for q in result["quantiles"]["other"])
        + ".",
    ]
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
