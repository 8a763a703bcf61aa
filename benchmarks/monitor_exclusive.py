"""Classes that exclude each other: how often a bundle flags both, and which one to keep.

    python benchmarks/monitor_exclusive.py --bundle B --out benchmarks/results

The bundle's `training.exclusive_pairs` are the classes its training labels never had together
(`metrics.exclusive_pairs`). Where both of a pair are at or above their thresholds, the monitor
keeps one (`runtime.monitor.one_of_each_pair`). Two rules are scored against the truth, where
exactly one of the two is true:
- "probability": the more probable class (the Bayes choice between two exclusive classes; the
  monitor's rule);
- "log-odds margin": the class further above its own threshold in log-odds.

1. `ptbxl100-release` val, the run the bundle was exported from (torch), per record, with 12
   leads and with each of the bundle's lead sets (the other leads masked, their thresholds);
   every pair.
2. The monitor's replay of the 18 cpsc2021 Holter records (leads I+II, 1-s hops): AFIB/SR, with
   the reference rhythm (`(AFIB` spans of the `.atr`) at the middle of each hop's window.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import wfdb
from monitor_common import DATA, machine, machine_line, write

from bell_edge.data import cache as data_cache
from bell_edge.data.cache import lead_set_mask
from bell_edge.metrics import per_record
from bell_edge.models.artifact import load_classifier, predict
from bell_edge.replay import replay
from bell_edge.runtime.bundle import read_bundle

RULES = ("probability", "log-odds margin")


def logit(x):
    x = np.clip(np.asarray(x, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(x / (1 - x))


def keeps_first(rule: str, p_a, p_b, th_a, th_b) -> bool:
    if rule == "probability":
        return p_a > p_b
    return logit(p_a) - logit(th_a) > logit(p_b) - logit(th_b)


def score_conflicts(tally: dict, p_a, p_b, th_a, th_b, truth_a: bool) -> None:
    tally["n"] += 1
    for rule in RULES:
        tally[rule] += int(keeps_first(rule, p_a, p_b, th_a, th_b) == truth_a)


def val_conflicts(run: Path, lead_sets: dict, pairs: list) -> list[dict]:
    clf = load_classifier(run)
    classes = list(clf.classes)
    cache = data_cache.load(DATA / "ptbxl100-release", clf.preprocess, tasks=clf.meta["tasks"],
                            progress=False)  # fmt: skip
    rows = cache.rows("val")
    out = []
    for key in [None, *(k for k in lead_sets if k.count(",") < 11)]:
        windows, masks = cache.windows[rows], cache.lead_masks[rows]
        thresholds = clf.thresholds
        if key is not None:
            masks = lead_set_mask(masks, key.split(","))
            windows = windows * masks[:, :, None].astype(windows.dtype)
            thresholds = np.asarray(lead_sets[key]["thresholds"])
        _, s, y = per_record(cache.record_ids[rows], predict(clf.model, windows, masks),
                             cache.labels[rows])  # fmt: skip
        tally = Counter(n=0)
        both = 0
        for a, b in pairs:
            i, j = classes.index(a), classes.index(b)
            above = (s[:, i] >= thresholds[i]) & (s[:, j] >= thresholds[j])
            both += int(above.sum())
            for r in np.flatnonzero(above & (y[:, i] + y[:, j] == 1)):
                score_conflicts(tally, s[r, i], s[r, j], thresholds[i], thresholds[j],
                                bool(y[r, i]))  # fmt: skip
        out.append({"leads": key or "12 leads", "records": int(len(y)), "both_above": both,
                    "one_true": tally["n"], **{r: tally[r] for r in RULES}})  # fmt: skip
    return out


def reference_af(record: Path):
    """A function of stream time: whether the reference rhythm there is AF."""
    ann = wfdb.rdann(str(record), "atr")
    fs = wfdb.rdheader(str(record)).fs
    changes = [(s / fs, a.strip() == "(AFIB") for s, a in zip(ann.sample, ann.aux_note, strict=True)
               if a.startswith("(")]  # fmt: skip
    return lambda t: next((af for start, af in reversed(changes) if start <= t), False)


def replay_conflicts(bundle: Path) -> dict:
    manifest = read_bundle(bundle).manifest
    classes = manifest["classes"]
    thresholds = dict(zip(classes, manifest["lead_set_thresholds"]["I,II"]["thresholds"],
                          strict=True))  # fmt: skip
    tally, hops, records = Counter(n=0), 0, 0
    for hea in sorted((DATA / "cpsc2021").glob("*.hea")):
        record = hea.with_suffix("")
        af_at, events = reference_af(record), []
        replay(record, bundle, speed=None, on_event=events.append)
        decided = [e for e in events if e.decisions is not None]
        hops += len(decided)
        found = 0
        for e in decided:
            p = e.probabilities
            if p["AFIB"] >= thresholds["AFIB"] and p["SR"] >= thresholds["SR"]:
                found += 1
                truth = af_at(e.t - 5.0)  # the middle of the 10-s window
                score_conflicts(tally, p["AFIB"], p["SR"], thresholds["AFIB"], thresholds["SR"],
                                truth)  # fmt: skip
                assert not (e.decisions["AFIB"] and e.decisions["SR"])
        records += found > 0
    return {"hops": hops, "records_with_both": records, "both_above": tally["n"],
            **{r: tally[r] for r in RULES}}  # fmt: skip


def share(right: int, n: int) -> str:
    return f"{right}/{n} ({100 * right / n:.0f}%)" if n else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    manifest = read_bundle(args.bundle).manifest
    pairs = manifest.get("training", {}).get("exclusive_pairs", [])
    if not pairs:
        raise SystemExit(f"{args.bundle}: no exclusive_pairs (fine-tuned before the field)")
    run = Path(manifest["source_checkpoint"])
    val = val_conflicts(run, manifest.get("lead_set_thresholds", {}), pairs)
    holter = replay_conflicts(args.bundle) if ["AFIB", "SR"] in pairs else None
    result = {"bundle": str(args.bundle), "run": str(run), "pairs": pairs, "val": val,
              "cpsc2021_afib_sr": holter, "machine": machine()}  # fmt: skip
    md = [
        "# Classes that exclude each other: flagged together, and which to keep",
        "",
        "`python benchmarks/monitor_exclusive.py --bundle B --out benchmarks/results`",
        "",
        f"Bundle: `{args.bundle}` (from `{run}`). {machine_line(result['machine'])}",
        "",
        "Pairs its training labels never had together: "
        f"{', '.join('/'.join(p) for p in pairs)}. Where both are at or above their thresholds "
        "and exactly one is true, how often each rule keeps the true one:",
        "",
        "| data | leads | both above | one true | more probable (the monitor's rule) | "
        "further above its threshold in log-odds |",
        "|---|---|---|---|---|---|",
        *[
            f"| ptbxl100-release val, {v['records']} records, every pair | {v['leads']} | "
            f"{v['both_above']} | {v['one_true']} | {share(v['probability'], v['one_true'])} | "
            f"{share(v['log-odds margin'], v['one_true'])} |"
            for v in val
        ],  # fmt: skip
    ]
    if holter:
        md.append(
            f"| cpsc2021 replay, {holter['hops']} hops, AFIB/SR against the reference rhythm | "
            f"I+II | {holter['both_above']} ({holter['records_with_both']} records) | "
            f"{holter['both_above']} | {share(holter['probability'], holter['both_above'])} | "
            f"{share(holter['log-odds margin'], holter['both_above'])} |"
        )
    write(args.out, "monitor_exclusive", result, md)


if __name__ == "__main__":
    main()
