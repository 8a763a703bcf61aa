"""Seeded, multi-label stratified subsets of a training split, for label-efficiency experiments.

`label_subset` picks a fraction of the records by iterative stratification (Sechidis et al.,
2011): the records are split into a subset and a rest of exact sizes, the rarest label first,
each record going where that label is most wanted, so every class keeps close to its prevalence.
Before that, each class with a positive gets one positive record in the subset. Selection is by
record: the windows of one record are taken or left together. A manifest (`save_subset`) records
the chosen ids so every method compared in an experiment trains on the same records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bell_edge.errors import InputError
from bell_edge.files import staged_file

MANIFEST_VERSION = 1


def label_subset(
    record_ids: Sequence[str] | np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Sorted row indices of a stratified `fraction` of the records (all rows of each record).

    `labels` is `(N, C)` multi-hot, one row per entry of `record_ids`; a record's labels are those
    of its first row. The subset holds `max(round(fraction * records), C)` records (at most all).
    """
    _check_fraction(fraction)
    ids = np.asarray(record_ids, dtype=str)
    y = np.asarray(labels) > 0.5
    if y.ndim != 2 or len(y) != len(ids):
        raise ValueError(f"labels of shape {y.shape} do not match {len(ids)} record ids")
    if not len(ids):
        raise ValueError("no records to choose from")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    chosen = _stratify(y[first], fraction, np.random.default_rng(seed))
    return np.flatnonzero(chosen[inverse.reshape(-1)])


def _stratify(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the records in the subset (one row of `y` per record)."""
    n_all, n_classes = y.shape
    n = min(n_all, max(round(fraction * n_all), n_classes))
    if n == n_all:
        return np.ones(n_all, dtype=bool)
    counts = y.sum(axis=0)
    want = np.stack([fraction * counts, (1 - fraction) * counts])  # (subset|rest, C) positives
    room = np.array([n, n_all - n])
    side = np.full(n_all, -1)  # 0: subset, 1: rest, -1: not yet placed
    order = rng.permutation(n_all)

    def place(i: int, j: int) -> None:
        side[i] = j
        want[j] -= y[i]
        room[j] -= 1

    for c in np.argsort(counts, kind="stable"):  # one positive per class, rarest first
        if counts[c] and not y[side == 0, c].any():
            candidates = order[y[order, c] & (side[order] < 0)]
            place(candidates[np.argmin(y[candidates].sum(axis=1))], 0)  # fewest other labels

    left = y[side < 0].sum(axis=0)
    while left.any():
        label = int(np.argmin(np.where(left > 0, left, np.iinfo(left.dtype).max)))
        for i in order[y[order, label] & (side[order] < 0)]:
            place(i, _side(want[:, label], room, rng))
        left = y[side < 0].sum(axis=0)
    for i in order[side[order] < 0]:  # records without any label
        place(i, int(np.argmax(room)))
    return side == 0


def _side(want: np.ndarray, room: np.ndarray, rng: np.random.Generator) -> int:
    """Where a record goes: the side with room that most wants its label, then the emptier."""
    if not room.all():
        return int(np.argmax(room))
    for key in (want, room):
        if key[0] != key[1]:
            return int(np.argmax(key))
    return int(rng.integers(2))


def subset_rows(cache_record_ids: np.ndarray, chosen_ids: Iterable[str]) -> np.ndarray:
    """Sorted indices of the rows (windows) of `cache_record_ids` that belong to `chosen_ids`."""
    ids = np.asarray(cache_record_ids, dtype=str)
    chosen = np.asarray(list(chosen_ids), dtype=str)
    missing = np.setdiff1d(chosen, ids)
    if len(missing):
        shown = ", ".join(missing[:5])
        raise InputError(f"{len(missing)} chosen record(s) not in the data: {shown}")
    return np.flatnonzero(np.isin(ids, chosen))


def save_subset(
    path: str | Path,
    record_ids: Sequence[str] | np.ndarray,
    fraction: float,
    seed: int,
    source: str,
    *,
    labels: np.ndarray,
    classes: Sequence[str],
) -> dict:
    """Write the manifest of a subset atomically and return it.

    `record_ids` and `labels` are row-aligned (windows of one record may repeat); the manifest
    keeps each record once, with per-class positive counts over records.
    """
    _check_fraction(fraction)
    ids = np.asarray(record_ids, dtype=str)
    y = np.asarray(labels) > 0.5
    if y.shape != (len(ids), len(classes)):
        raise ValueError(f"labels of shape {y.shape} are not ({len(ids)}, {len(classes)})")
    unique, first = np.unique(ids, return_index=True)
    positives = y[first].sum(axis=0)
    manifest = {
        "version": MANIFEST_VERSION,
        "fraction": float(fraction),
        "seed": int(seed),
        "source": source,
        "n": len(unique),
        "classes": list(classes),
        "positives": {c: int(k) for c, k in zip(classes, positives, strict=True)},
        "record_ids": unique.tolist(),
    }
    with staged_file(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def load_subset(path: str | Path) -> dict:
    """A manifest written by `save_subset`; InputError naming the file when it is not one."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable subset manifest ({exc})") from None
    keys = {"version", "fraction", "seed", "n", "classes", "positives", "record_ids"}
    if not isinstance(manifest, dict) or not keys <= set(manifest):
        raise InputError(f"{path}: not a subset manifest (needs {', '.join(sorted(keys))})")
    if manifest["version"] != MANIFEST_VERSION:
        raise InputError(f"{path}: unsupported manifest version {manifest['version']!r}")
    if manifest["n"] != len(manifest["record_ids"]):
        raise InputError(f"{path}: n = {manifest['n']} but {len(manifest['record_ids'])} ids")
    return manifest


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 1:  # NaN fails too
        raise InputError(f"fraction {fraction!r} is not in (0, 1]")
