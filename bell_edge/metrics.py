"""Multi-label classification metrics with seeded bootstrap confidence intervals (no torch).

AUROC and AUPRC are threshold-free and per class; the macro averages cover only the classes a
split can score (both positives and negatives). F1 and accuracy use per-class thresholds. The
bootstrap resamples records; its AUROC is rank-based (ties count one half), vectorized over
resamples, and equal to scikit-learn's on the full set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

CHUNK_CELLS = 4_000_000  # resamples x records held in memory at once
MIN_THRESHOLD_POSITIVES = 5  # fewer positives than this: no fitted decision threshold
MAX_SEPARATION_P = 0.01  # nor where the scores do not separate the class at this level
MIN_EXPECTED_TOGETHER = 5.0  # exclusive: never together, where independence expects >= this


def evaluate_scores(
    y_true: np.ndarray,
    y_score: np.ndarray,
    classes: Sequence[str],
    thresholds: np.ndarray | Sequence[float] | float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Per-class and macro metrics of `(N, C)` probabilities against `(N, C)` multi-hot labels.

    Returns a JSON-ready dict: `n_records`, `macro_auroc`, `macro_auprc`, `macro_auroc_ci`
    (95%, over `bootstrap` resamples of records; None without valid resamples), `bootstrap`
    (resamples drawn and used for the macro CI, seed) and `per_class` {class: auroc, auprc,
    auroc_ci, f1, accuracy, positives, threshold, and a `note` where AUROC cannot be scored}.
    """
    y, s = _check(y_true, y_score)
    if y.shape[1] != len(classes):
        raise ValueError(f"{y.shape[1]} label columns but {len(classes)} classes")
    cut = np.broadcast_to(np.asarray(0.5 if thresholds is None else thresholds, float), y.shape[1:])
    pos = y.sum(axis=0)
    scorable = (pos > 0) & (pos < len(y))
    boot = bootstrap_aurocs(y, s, bootstrap, seed)  # (B, C), NaN where a resample cannot score
    per_class = {}
    for c, name in enumerate(classes):
        pred = s[:, c] >= cut[c]
        tp, fp = int((pred & y[:, c]).sum()), int((pred & ~y[:, c]).sum())
        fn = int(pos[c]) - tp
        entry = {
            "auroc": None,
            "auprc": None,
            "auroc_ci": None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
            "accuracy": float((pred == y[:, c]).mean()),
            "positives": int(pos[c]),
            "threshold": float(cut[c]),
        }
        if scorable[c]:
            entry["auroc"] = float(roc_auc_score(y[:, c], s[:, c]))
            entry["auprc"] = float(average_precision_score(y[:, c], s[:, c]))
            entry["auroc_ci"] = _interval(boot[:, c])
        else:
            entry["note"] = f"no {'positive' if pos[c] == 0 else 'negative'} in this split"
        per_class[name] = entry
    scored = [per_class[name] for name, ok in zip(classes, scorable, strict=True) if ok]
    macro = boot[:, scorable].mean(axis=1) if scored else np.full(len(boot), np.nan)
    return {
        "n_records": len(y),
        "macro_auroc": float(np.mean([e["auroc"] for e in scored])) if scored else None,
        "macro_auprc": float(np.mean([e["auprc"] for e in scored])) if scored else None,
        "macro_auroc_ci": _interval(macro),
        "bootstrap": {"resamples": bootstrap, "used": int(np.isfinite(macro).sum()), "seed": seed},
        "per_class": per_class,
    }


def bootstrap_aurocs(y_true: np.ndarray, y_score: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`(n, C)` AUROCs over `n` seeded resamples of the rows; NaN where a class cannot score."""
    y, s = _check(y_true, y_score)
    rng = np.random.default_rng(seed)
    rows = len(y)
    step = max(1, CHUNK_CELLS // rows)
    out = [np.empty((0, y.shape[1]))]
    for start in range(0, n, step):
        b = min(step, n - start)
        draws = rng.integers(0, rows, (b, rows)) + rows * np.arange(b)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * rows).reshape(b, rows)
        out.append(
            np.stack([weighted_auroc(y[:, c], s[:, c], weights) for c in range(y.shape[1])], 1)
        )
    return np.concatenate(out)


def weighted_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one class under each row of `(B, N)` row weights (resample counts); NaN if
    a weighting leaves no positive or no negative. Tied scores count one half."""
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    p = np.add.reduceat(w * y, starts, axis=1)
    q = np.add.reduceat(w * ~y, starts, axis=1)
    below = np.cumsum(q, axis=1) - q  # negatives scored strictly lower
    pairs = p.sum(axis=1) * q.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (p * (below + 0.5 * q)).sum(axis=1) / pairs
    return np.where(pairs > 0, auc, np.nan)


def separable(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Per class, whether a decision threshold can be fitted: at least `MIN_THRESHOLD_POSITIVES`
    positives and negatives, whose scores rank above the negatives' beyond chance (one-sided
    Mann-Whitney U, p < `MAX_SEPARATION_P`; the AUROC's own test)."""
    y, s = _check(y_true, y_score)
    out = np.zeros(y.shape[1], dtype=bool)
    for c in range(y.shape[1]):
        pos, neg = s[y[:, c], c], s[~y[:, c], c]
        if len(pos) >= MIN_THRESHOLD_POSITIVES and len(neg) >= MIN_THRESHOLD_POSITIVES:
            out[c] = mannwhitneyu(pos, neg, alternative="greater").pvalue < MAX_SEPARATION_P
    return out


def best_f1_thresholds(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Per class, the score threshold (predict `score >= t`) with the highest F1; 0.5 for a class
    that is not `separable`. With a few positives, or scores near chance, the best F1 sits at
    the lowest scores (near 0 for a rare class) and the class would flag almost everything: a
    10%-label model's SARRH (val AUROC 0.58) got a threshold of 0.005 and flagged every hop of a
    replay."""
    y, s = _check(y_true, y_score)
    out = np.full(y.shape[1], 0.5)
    fit = separable(y, s)
    for c in range(y.shape[1]):
        if not fit[c]:
            continue
        precision, recall, cuts = precision_recall_curve(y[:, c], s[:, c])
        total = precision[:-1] + recall[:-1]  # the last point (recall 0) has no threshold
        f1 = np.divide(
            2 * precision[:-1] * recall[:-1], total, out=np.zeros_like(total), where=total > 0
        )
        out[c] = cuts[np.argmax(f1)]
    return out


def exclusive_pairs(y_true: np.ndarray, classes: Sequence[str]) -> list[list[str]]:
    """Pairs of classes never positive on the same record, where independence would put them
    together at least `MIN_EXPECTED_TOGETHER` times (a Poisson chance of seeing none below
    e^-5 = 0.007): in the ptbxl100-release train split, NORM with MI or STTC, and SR with AFIB,
    SBRAD, STACH or SVARR. A monitor reports at most one of each pair."""
    y = np.asarray(y_true) > 0.5
    together = y.T.astype(float) @ y
    expected = np.outer(y.sum(0), y.sum(0)) / max(len(y), 1)
    c = len(classes)
    return [[classes[a], classes[b]] for a in range(c) for b in range(a + 1, c)
            if together[a, b] == 0 and expected[a, b] >= MIN_EXPECTED_TOGETHER]  # fmt: skip


def _interval(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    return np.percentile(values, [2.5, 97.5]).tolist() if len(values) else None


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true) > 0.5, np.asarray(y_score, dtype=float)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be the same (N, C) shape")
    if not len(y):
        raise ValueError("no records to score")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return y, s


def per_record(record_ids: np.ndarray, scores: np.ndarray, labels: np.ndarray):
    """Average window scores per record (long records give several windows)."""
    ids, inverse = np.unique(record_ids, return_inverse=True)
    sums = np.zeros((len(ids), scores.shape[1]))
    np.add.at(sums, inverse, scores)
    counts = np.bincount(inverse, minlength=len(ids))[:, None]
    first = np.zeros(len(ids), dtype=int)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return ids, sums / counts, labels[first]
