"""Time to detection of AF onsets, and false alarms per hour, on cpsc2021 (2 leads, 200 Hz).

Every record is streamed through `StreamingMonitor` (leads I and II, 1-s hop, 10-s window).
Rhythm intervals come from the `.atr` annotations (`aux_note` `(AFIB`/`(AFL` opens AF, any
other `(...` opens non-AF). A window is "AF" when it lies wholly inside AF, "non-AF" when wholly
outside, "mixed" otherwise. The bundle's classes are PTB-XL diagnostic superclasses (NORM MI
STTC CD HYP): none of them is AF, so three alarm rules are tried, each at the bundle's
thresholds, raised on one hop or only after k consecutive analysed hops:
- `not NORM`: the NORM decision is negative;
- `STTC or CD`: either decision is positive;
- `any abnormal`: any of MI, STTC, CD, HYP is positive.
Delay: from an annotated onset (non-AF -> AF inside a record) to the first hop, at or after it,
with the alarm on, within the episode plus one window; an onset already in alarm counts as
"alarm already on". False alarms: alarm rises (off -> on) among non-AF windows, per hour of
non-AF windows. Threshold-free: per class, the AUROC of the probability for AF against non-AF
windows. Usage: OMP_NUM_THREADS=1 python benchmarks/time_to_detection.py [--bundle B]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import wfdb
from monitor_common import DATA, DEFAULT_BUNDLE, ROOT, machine, machine_line, write
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from bell_edge.data import cache as data_cache
from bell_edge.data.records import read_record
from bell_edge.metrics import best_f1_thresholds
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

WINDOW_S, HOP_S = 10.0, 1.0
RULES = {
    "not NORM": lambda d: not d["NORM"],
    "STTC or CD": lambda d: d["STTC"] or d["CD"],
    "any abnormal": lambda d: d["MI"] or d["STTC"] or d["CD"] or d["HYP"],
}
PERSISTENCE = (1, 5)


def af_intervals(path: Path, seconds: float) -> list[tuple[float, float]]:
    """`[(start, end)]` of AF in seconds, from the rhythm notes of the `.atr` file."""
    ann = wfdb.rdann(str(path), "atr")
    changes = [(s / ann.fs, note) for s, note in zip(ann.sample, ann.aux_note, strict=True)
               if note.startswith("(")]  # fmt: skip
    out, start = [], None
    for t, note in changes:
        is_af = note.startswith(("(AFIB", "(AFL"))
        if is_af and start is None:
            start = t
        elif not is_af and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, seconds))
    return out


def label(t: float, af: list[tuple[float, float]]) -> str:
    """AF, non-AF or mixed for the window (t - WINDOW_S, t]."""
    lo = t - WINDOW_S
    if any(a <= lo and t <= b for a, b in af):
        return "AF"
    return "mixed" if any(a < t and lo < b for a, b in af) else "non-AF"


def alarms(events: list, rule, k: int, thresholds: dict[str, float]) -> np.ndarray:
    """Per event: alarm on when the rule held on the last k analysed hops, no gap between."""
    run, out = 0, []
    for e in events:
        held = e.analysed and rule({c: p >= thresholds[c] for c, p in e.probabilities.items()})
        run = run + 1 if held else 0
        out.append(run >= k)
    return np.array(out)


def aurocs(events: list, classes) -> dict[str, float]:
    """Per class, AUROC of the probability for AF against non-AF windows (analysed hops)."""
    kept = [(e, lab) for e, lab in events if e.analysed and lab != "mixed"]
    y = np.array([lab == "AF" for _, lab in kept])
    return {c: round(float(roc_auc_score(y, [e.probabilities[c] for e, _ in kept])), 3)
            for c in classes}  # fmt: skip


def lead_set_thresholds(engine: Engine, data: Path, leads: list[str]) -> dict[str, float]:
    """Best-F1 thresholds on ptbxl100 val with only `leads` unmasked: the procedure that gave
    the bundle its 12-lead thresholds, for the lead set of the Holter (not fitted on cpsc2021)."""
    cache = data_cache.load(data, engine.bundle.preprocess, progress=False)
    rows = cache.rows("val")
    mask = np.array([lead in leads for lead in engine.bundle.lead_order], dtype=np.float32)
    scores = engine.probabilities(cache.windows[rows], np.tile(mask, (len(rows), 1)))
    cuts = best_f1_thresholds(cache.labels[rows], scores)
    return {c: float(t) for c, t in zip(engine.classes, cuts, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--data", type=Path, default=DATA / "cpsc2021")
    parser.add_argument("--val", type=Path, default=DATA / "ptbxl100",
                        help="labeled data whose val split sets the I+II thresholds")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    m = machine()
    engine = Engine(args.bundle)
    streams = []
    for hea in tqdm(sorted(args.data.glob("*.hea")), desc="records"):
        rec = read_record(hea)
        monitor = StreamingMonitor(engine, rec.fs, ["I", "II"], HOP_S, WINDOW_S)
        hop = monitor.hop
        events = [e for i in range(0, rec.signal.shape[1], hop)
                  for e in monitor.push(rec.signal[:2, i : i + hop].T)]  # fmt: skip
        af = af_intervals(rec.path, rec.seconds)
        streams.append((rec, af, events, [label(e.t, af) for e in events]))

    all_events = [(e, lab) for _, _, events, labels in streams
                  for e, lab in zip(events, labels, strict=True)]  # fmt: skip
    threshold_sets = {
        "bundle (12-lead val)": dict(
            zip(engine.classes, map(float, engine.thresholds), strict=True)
        ),
        "I+II (ptbxl100 val)": lead_set_thresholds(engine, args.val, ["I", "II"]),
    }
    hours = {lab: sum(1 for e, la in all_events if la == lab) * HOP_S / 3600
             for lab in ("AF", "non-AF", "mixed")}  # fmt: skip
    paroxysmal = [(e, lab) for _, _, events, labels in streams if {"AF", "non-AF"} <= set(labels)
                  for e, lab in zip(events, labels, strict=True)]  # fmt: skip
    auroc = {"all records": aurocs(all_events, engine.classes),
             "paroxysmal records only": aurocs(paroxysmal, engine.classes)}  # fmt: skip
    onsets = [(rec, a, b, i) for i, (rec, af, _, _) in enumerate(streams)
              for a, b in af if a > 0]  # fmt: skip

    rows = []
    for (name, rule), (th_name, th), k in itertools.product(
        RULES.items(), threshold_sets.items(), PERSISTENCE
    ):
        counts = dict.fromkeys(("rises", "non_af", "non_af_on", "af", "af_on"), 0)
        for _, _, events, labels in streams:
            prev = False
            for alarm, lab in zip(alarms(events, rule, k, th), labels, strict=True):
                if lab == "non-AF":
                    counts["non_af"] += 1
                    counts["non_af_on"] += alarm
                    counts["rises"] += alarm and not prev
                elif lab == "AF":
                    counts["af"] += 1
                    counts["af_on"] += alarm
                prev = alarm
        delays, already, missed = [], 0, 0
        for _, a, b, i in onsets:
            events = streams[i][2]
            on = alarms(events, rule, k, th)
            times = np.array([e.t for e in events])
            before = np.flatnonzero(times < a)
            hit = np.flatnonzero((times >= a) & (times <= b + WINDOW_S) & on)
            if len(before) and on[before[-1]]:
                already += 1
            elif len(hit):
                delays.append(float(times[hit[0]] - a))
            else:
                missed += 1
        rows.append({
            "rule": name, "thresholds": th_name, "persistence_hops": k, "onsets": len(onsets),
            "detected": len(delays), "alarm_already_on": already, "missed": missed,
            "delay_s": {"median": float(np.median(delays)) if delays else None,
                        "max": max(delays) if delays else None, "all": delays},
            "false_alarms_per_hour": round(float(counts["rises"] / hours["non-AF"]), 1),
            "alarm_share_non_af": round(float(counts["non_af_on"] / max(1, counts["non_af"])), 3),
            "alarm_share_af": round(float(counts["af_on"] / max(1, counts["af"])), 3),
        })  # fmt: skip
        print(rows[-1])

    no_analysis = sum(1 for e, _ in all_events if not e.analysed)
    result = {
        "bundle": str(args.bundle),
        "data": str(args.data),
        "records": len(streams),
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "hops": len(all_events),
        "no_analysis_hops": no_analysis,
        "onsets": [{"record": rec.record_id, "onset_s": a, "end_s": b} for rec, a, b, _ in onsets],
        "auroc_af_vs_non_af_windows": auroc,
        "threshold_sets": threshold_sets,
        "rows": rows,
        "machine": m,
    }
    md = [
        "# Time to detection of AF onsets (cpsc2021)",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/time_to_detection.py` "
        f"(bundle `{args.bundle}`: trained on 12-lead PTB-XL 10-s ECGs, 10% of the labels). "
        f"Data: {len(streams)} cpsc2021 records, leads I and II at 200 Hz, streamed through "
        "`StreamingMonitor` (1-s hop, 10-s window, the 10 other leads masked). "
        f"{result['hops']} hops: {hours['AF']:.2f} h of AF windows, {hours['non-AF']:.2f} h of "
        f"non-AF windows, {hours['mixed']:.2f} h mixed; {len(onsets)} annotated AF onsets "
        f"(the persistent-AF records start in AF and have none); {no_analysis} hops without "
        "analysis (warm-up, a saturated lead).",
        "",
        machine_line(m),
        "",
        "Rules (the bundle has no AF class): `not NORM` = NORM decision negative; `STTC or CD`; "
        "`any abnormal` = any of MI, STTC, CD, HYP. Raised on one hop (k=1) or after k "
        "consecutive analysed hops. Delay = onset to the first hop with the alarm on, up to the "
        "episode end + 10 s. False alarms = alarm rises among wholly non-AF windows; a record's "
        "first analysed hop can rise too, so an alarm that is always on still counts one rise "
        "per record: read the rate together with the alarm share.",
        "",
        "Thresholds: the bundle's own (best F1 on 12-lead ptbxl100 val), or the same procedure "
        "rerun on ptbxl100 val with only leads I and II unmasked (chosen before and apart from "
        "cpsc2021): "
        + "; ".join(
            f"{n}: " + ", ".join(f"{c} {v:.3f}" for c, v in th.items())
            for n, th in threshold_sets.items()
        )
        + ".",
        "",
        "| rule | thresholds | k | onsets | detected | alarm already on | missed "
        "| delay median / max (s) | false alarms per non-AF hour | alarm share, non-AF hops "
        "| alarm share, AF hops |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["delay_s"]
        delay = "-" if d["median"] is None else f"{d['median']:.0f} / {d['max']:.0f}"
        md.append(
            f"| {r['rule']} | {r['thresholds']} | {r['persistence_hops']} | {r['onsets']} | "
            f"{r['detected']} | "
            f"{r['alarm_already_on']} | {r['missed']} | {delay} | "
            f"{r['false_alarms_per_hour']} | {r['alarm_share_non_af']} | {r['alarm_share_af']} |"
        )
    md += [
        "",
        "Threshold-free: AUROC of each class probability, AF windows against non-AF windows "
        "(analysed hops; 0.5 = no information, below 0.5 = the score is lower in AF): "
        + "; ".join(
            f"{where}: " + ", ".join(f"{c} {v:.3f}" for c, v in a.items())
            for where, a in auroc.items()
        )  # fmt: skip
        + ". Pooled over all records, AF windows come mostly from the persistent-AF patients "
        "and non-AF windows from other patients, so the pooled AUROC measures patients as much "
        "as rhythm; the paroxysmal records (both rhythms in one patient) are the fairer view.",
        "",
        "## What transfers and what does not",
        "",
        "- The streaming machinery transfers: the 2-lead 200 Hz Holter runs through the same "
        "preprocessing as training, one event per second, saturated stretches (records data_8_2 "
        "and data_8_3, lead II at its 10.2 mV rail) give 'no analysis' instead of a guess.",
        "- The classes do not: PTB-XL diagnostic superclasses describe morphology on 10-s "
        "resting ECGs, not rhythm, so no rule here is an AF detector. An AF alarm needs a "
        "rhythm class (PTB-XL's AFIB rhythm statement) or an RR-irregularity detector.",
        "- The thresholds do not: the bundle's were chosen on 12-lead windows. With 10 of 12 "
        "leads masked the probabilities shift and, with the bundle's thresholds, the alarms are "
        "on for most hops, AF or not (the alarm-share columns; a useful AF alarm has a small "
        "share outside AF and a large one in AF). Thresholds re-chosen for I+II on ptbxl100 val "
        "fire less often, but not more in AF than outside it.",
        "- The scores do move with the rhythm (the AUROCs are far from 0.5), but in directions "
        "that no rule above anticipated (in this run NORM is higher and STTC lower in AF). A rule "
        "built on that would be fitted on these few patients, so none is reported.",
        "- Ambulatory noise, electrode motion and baseline wander of a Holter are far from the "
        "resting ECGs the model saw.",
        "- Sample size: the onsets come from 6 paroxysmal records; the delays are anecdotes, "
        "not estimates.",
    ]
    write(args.out, "monitor_time_to_detection", result, md)


if __name__ == "__main__":
    main()
