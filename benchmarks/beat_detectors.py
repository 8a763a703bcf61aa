"""Compare QRS detectors on real annotated records: sleepecg, neurokit2, wfdb XQRS.

Scored with `wfdb.processing.compare_annotations` and a 150 ms window, on mitdb/100 (MLII) and
on every cpsc2021 record (lead I, then lead II). CPU seconds per ECG-hour of the detector alone.

    python benchmarks/beat_detectors.py --out benchmarks/results/beat_detectors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import wfdb
from wfdb import processing

from bell_edge.bench.machine import describe
from bell_edge.bench.machine import summary as summary_line

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def reference_beats(path: Path) -> np.ndarray:
    ann = wfdb.rdann(str(path), "atr")
    return np.array(
        [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS]
    )


def detect_sleepecg(x, fs):
    import sleepecg

    return sleepecg.detect_heartbeats(x, fs)


def detect_neurokit2(x, fs):
    import neurokit2 as nk

    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)
    return np.asarray(info["ECG_R_Peaks"])


def detect_xqrs(x, fs):
    return processing.xqrs_detect(x, fs, verbose=False)


DETECTORS = {"sleepecg": detect_sleepecg, "neurokit2": detect_neurokit2, "xqrs": detect_xqrs}


def records() -> list[tuple[str, Path, int]]:
    out = [("mitdb/100 MLII", DATA / "mitdb" / "100", 0)]
    for hea in sorted((DATA / "cpsc2021").glob("*.hea")):
        for lead in (0, 1):
            name = f"cpsc2021/{hea.stem} {'I' if lead == 0 else 'II'}"
            out.append((name, hea.with_suffix(""), lead))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for name, path, lead in records():
        rec = wfdb.rdrecord(str(path))
        x, fs = np.nan_to_num(rec.p_signal[:, lead]), float(rec.fs)
        ref = reference_beats(path)
        for det, fn in DETECTORS.items():
            t0 = time.process_time()
            found = np.asarray(fn(x, fs), dtype=int)
            cpu = time.process_time() - t0
            c = processing.compare_annotations(ref, found, int(0.15 * fs))
            rows.append(
                {
                    "record": name,
                    "detector": det,
                    "ref": len(ref),
                    "tp": int(c.tp),
                    "fp": int(c.fp),
                    "fn": int(c.fn),
                    "cpu_s": cpu,
                    "hours": len(x) / fs / 3600,
                }
            )
            print(name, det, c.tp, c.fp, c.fn, f"{cpu:.2f}s", flush=True)
    summary = {}
    for det in DETECTORS:
        groups = {"mitdb/100": ("mitdb", ""), "cpsc2021 lead I": ("cpsc2021", " I"),
                  "cpsc2021 lead II": ("cpsc2021", " II")}  # fmt: skip
        for group, (prefix, lead) in groups.items():
            sel = [r for r in rows if r["detector"] == det and r["record"].startswith(prefix)
                   and r["record"].endswith(lead)]  # fmt: skip
            tp, fp, fn = (sum(r[k] for r in sel) for k in ("tp", "fp", "fn"))
            summary[f"{det} | {group}"] = {
                "beats": tp + fn,
                "se": tp / (tp + fn),
                "ppv": tp / (tp + fp),
                "cpu_s_per_ecg_hour": sum(r["cpu_s"] for r in sel) / sum(r["hours"] for r in sel),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": describe(), "summary": summary, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    machine = report["machine"]
    lines = [
        "# QRS detectors on real annotated records",
        "",
        "`python benchmarks/beat_detectors.py --out benchmarks/results/beat_detectors`",
        "",
        "Scored with `wfdb.processing.compare_annotations`, 150 ms window, against every "
        "beat annotation. CPU-s per ECG-hour: process time of the detector alone, one lead.",
        "",
        "| detector | records | beats | Se | +P | CPU-s / ECG-hour |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        det, group = key.split(" | ")
        lines.append(
            f"| {det} | {group} | {s['beats']} | {100 * s['se']:.2f}% | "
            f"{100 * s['ppv']:.2f}% | {s['cpu_s_per_ecg_hour']:.2f} |"
        )
    lines += [
        "",
        f"Machine: {summary_line(machine)}; shared with training runs (CPU times of "
        "one run compare; absolute ones are inflated).",
        "",
        "sleepecg 0.6.0, neurokit2 0.2.13 (`ecg_clean` + `ecg_peaks`, method neurokit), "
        "wfdb 4.3.1 `xqrs_detect`.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
