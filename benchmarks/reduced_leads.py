"""How much accuracy survives with fewer leads: macro AUROC on ptbxl100 val by lead set.

The bundle's model (trained on 12 leads) runs on the cached, preprocessed val windows with the
other leads masked, as `StreamingMonitor` masks leads a device lacks or loses. Lead sets: all 12;
I and II (a 2-lead Holter); I, II, III (a 3-electrode monitor); I, II, V1 (3 leads with a chest
lead); the 6 limb leads + V1 (a 5-electrode monitor). INT8 and FP32 models, scored per record
with bootstrap CIs, plus the share of thresholded decisions that differ from the 12-lead ones.
Usage: OMP_NUM_THREADS=1 python benchmarks/reduced_leads.py [--bundle B] [--data DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from monitor_common import DATA, DEFAULT_BUNDLE, ROOT, machine, machine_line, write

from bell_edge.data import cache as data_cache
from bell_edge.runtime.engine import Engine
from bell_edge.train.evaluate import score

LEAD_SETS = {
    "12 leads": None,
    "I, II": ["I", "II"],
    "I, II, III": ["I", "II", "III"],
    "I, II, V1": ["I", "II", "V1"],
    "6 limb + V1": ["I", "II", "III", "aVR", "aVL", "aVF", "V1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--data", type=Path, default=DATA / "ptbxl100")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    m = machine()
    rows = []
    for precision in ("int8", "fp32"):
        engine = Engine(args.bundle, precision=precision)
        cache = data_cache.load(args.data, engine.bundle.preprocess, progress=False)
        val = data_cache.labeled_rows(cache, "val", engine.classes, args.data)
        full = None
        for name, leads in LEAD_SETS.items():
            keep = np.array(
                [leads is None or lead in leads for lead in engine.bundle.lead_order], dtype=bool
            )
            masks = cache.lead_masks[val] & keep
            scores = engine.probabilities(cache.windows[val], masks)
            decisions = scores >= engine.thresholds
            full = decisions if full is None else full
            r = score(cache, val, scores, engine.classes, engine.thresholds, args.bootstrap)
            rows.append({
                "precision": precision, "leads": name, "n_leads": int(keep.sum()),
                "macro_auroc": r["macro_auroc"], "macro_auroc_ci": r["macro_auroc_ci"],
                "per_class_auroc": {c: v["auroc"] for c, v in r["per_class"].items()},
                "per_class_f1": {c: v["f1"] for c, v in r["per_class"].items()},
                "decisions_changed_vs_12": float((decisions != full).mean()),
                "positive_rate": float(decisions.mean()),
            })  # fmt: skip
            print(precision, name, round(r["macro_auroc"], 4))
    n_records = len(np.unique(cache.record_ids[val]))
    result = {"bundle": str(args.bundle), "data": str(args.data), "split": "val",
              "records": n_records, "rows": rows, "machine": m}  # fmt: skip
    classes = list(rows[0]["per_class_auroc"])
    md = [
        "# Reduced leads: accuracy that survives lead masking (ptbxl100 val)",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/reduced_leads.py` "
        f"(bundle `{args.bundle}`, trained on 12 leads with 10% of the labels). "
        f"{n_records} val records of `{args.data.name}`, the cached preprocessed windows; the "
        "missing leads are masked (the model zeroes their input and latents), as "
        f"`StreamingMonitor` does. Macro AUROC per record with a {args.bootstrap}-resample "
        "bootstrap 95% CI; decisions at the bundle's (12-lead) thresholds.",
        "",
        machine_line(m),
        "",
        "| model | leads | macro AUROC [95% CI] | "
        + " | ".join(f"{c} AUROC" for c in classes)
        + " | decisions changed vs 12 leads | positive rate |",
        "|---|---|---|" + "---|" * len(classes) + "---|---|",
    ]
    for r in rows:
        lo, hi = r["macro_auroc_ci"]
        md.append(
            f"| {r['precision'].upper()} | {r['leads']} | {r['macro_auroc']:.4f} "
            f"[{lo:.3f}, {hi:.3f}] | "
            + " | ".join(f"{r['per_class_auroc'][c]:.3f}" for c in classes)
            + f" | {100 * r['decisions_changed_vs_12']:.1f}% | {100 * r['positive_rate']:.1f}% |"
        )
    md += [
        "",
        f"Labels: {100 * float(cache.labels[val].mean()):.1f}% of (record, class) pairs are "
        "positive, against which to read the positive rate.",
        "",
        "The model never saw masked leads in training (PTB-XL records have all 12), so these "
        "figures are what masking alone gives. The 12-lead thresholds do not carry over: with "
        "leads masked the probabilities shift, which the positive rate shows; a device with a "
        "fixed lead set needs thresholds (and ideally training with lead dropout) for that set.",
    ]
    write(args.out, "monitor_reduced_leads", result, md)


if __name__ == "__main__":
    main()
