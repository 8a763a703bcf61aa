"""What a folder or a single record holds: layout, counts, rates, labels, problems."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.datasets import Dataset, open_dataset
from bell_edge.data.records import Record, RecordError, read_record, record_path


def inspect_record(path: str | Path) -> dict:
    """Header facts and a signal summary of one record (raises RecordError when broken)."""
    rec: Record = read_record(path)
    present = rec.signal[rec.lead_mask]
    return {
        "record": str(record_path(path)),
        "fs": rec.fs,
        "samples": rec.signal.shape[1],
        "seconds": round(rec.seconds, 3),
        "source_leads": list(rec.source_leads),
        "leads_present": [CANONICAL_LEADS[i] for i in np.flatnonzero(rec.lead_mask)],
        "units": sorted(set(rec.units)),
        "comments": list(rec.comments),
        "signal": {
            "min": float(present.min()),
            "max": float(present.max()),
            "mean_std": float(present.std(axis=1).mean()),
        },
    }


def inspect_folder(path: str | Path, progress=None) -> dict:
    """Summary of a dataset folder. Every record is read once, so problems are all found."""
    dataset: Dataset = open_dataset(path)
    refs = list(dataset.records)

    def probe(ref):
        try:
            rec = read_record(ref.path)
        except RecordError as exc:
            return ref, None, str(exc)
        return ref, (rec.fs, int(rec.lead_mask.sum()), rec.seconds), None

    rates, leads, durations, problems = Counter(), Counter(), [], []
    by_split: dict[str, Counter] = {}
    readable = 0
    for ref, facts, error in _tracked(map(probe, refs), len(refs), progress):
        if error:
            problems.append({"record": ref.record_id, "error": error})
            continue
        readable += 1
        fs, n_leads, seconds = facts
        rates[fs] += 1
        leads[n_leads] += 1
        durations.append(seconds)
        counts = by_split.setdefault(ref.split or "all", Counter(records=0))
        counts["records"] += 1
        for cls, flag in zip(dataset.classes, ref.labels or (), strict=False):
            counts[cls] += flag
    d = np.array(durations) if durations else np.zeros(1)
    return {
        "path": str(dataset.root),
        "layout": dataset.layout,
        "records": len(refs),
        "readable": readable,
        "splits": {s: c["records"] for s, c in sorted(by_split.items())},
        "classes": list(dataset.classes),
        "labels_by_split": {
            s: {cls: c[cls] for cls in dataset.classes} for s, c in sorted(by_split.items())
        }
        if dataset.labeled
        else {},
        "labels_total": {
            cls: sum(counts[cls] for counts in by_split.values()) for cls in dataset.classes
        },
        "rates_hz": {f"{k:g}": v for k, v in sorted(rates.items())},
        "leads": {str(k): v for k, v in sorted(leads.items())},
        "seconds": {"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max())},
        "dropped_by_layout": dataset.dropped,
        "problems": problems,
    }


def _tracked(iterable, total, progress):
    if progress is None:
        return iterable
    return progress(iterable, total=total)
