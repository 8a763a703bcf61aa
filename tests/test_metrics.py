"""Classification metrics: hand-computed values, bootstrap intervals, unscorable classes."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from bell_edge.metrics import best_f1_thresholds, evaluate_scores, separable, weighted_auroc

CLASSES = ("A", "B", "C", "D", "E")


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((n, 5)) < 0.3
    score = 1 / (1 + np.exp(-(1.5 * y + rng.normal(size=(n, 5)) - 0.8)))
    return y.astype(np.float32), score


def test_hand_computed():
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0, 0]], dtype=np.float32)
    s = np.array([[0.9, 0.2], [0.8, 0.3], [0.4, 0.6], [0.1, 0.7], [0.5, 0.9]])
    out = evaluate_scores(y, s, ("A", "B"), bootstrap=0)
    a, b = out["per_class"]["A"], out["per_class"]["B"]
    # A: positives 0.9, 0.4; negatives 0.8, 0.1, 0.5 -> ordered pairs 3 + 1 of 6
    assert a["auroc"] == pytest.approx(4 / 6)
    # A ranked: 0.9+ 0.8- 0.5- 0.4+ -> AP = (1/1 + 2/4) / 2
    assert a["auprc"] == pytest.approx(0.75)
    # at 0.5: A predicts 0.9, 0.8, 0.5 -> tp 1, fp 2, fn 1
    assert a["f1"] == pytest.approx(2 / 5) and a["accuracy"] == pytest.approx(2 / 5)
    # B: positives 0.3, 0.7; negatives 0.2, 0.6, 0.9 -> pairs 1 + 2 of 6; AP = (1/2 + 2/4) / 2
    assert b["auroc"] == pytest.approx(3 / 6) and b["auprc"] == pytest.approx(0.5)
    assert out["macro_auroc"] == pytest.approx((4 / 6 + 3 / 6) / 2)
    assert out["macro_auprc"] == pytest.approx((0.75 + 0.5) / 2)
    assert out["n_records"] == 5 and out["macro_auroc_ci"] is None


def test_rank_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.2
    s = np.round(rng.random(300), 1)  # many ties
    one = weighted_auroc(y, s, np.ones((1, 300), dtype=int))[0]
    assert one == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    counts = rng.integers(0, 3, 300)
    rows = np.repeat(np.arange(300), counts)
    resampled = weighted_auroc(y, s, counts[None])[0]
    assert resampled == pytest.approx(roc_auc_score(y[rows], s[rows]), abs=1e-12)


def test_bootstrap_interval_contains_estimate_and_narrows():
    widths = []
    for n in (100, 1000):
        y, s = _synthetic(n)
        out = evaluate_scores(y, s, CLASSES, bootstrap=300)
        lo, hi = out["macro_auroc_ci"]
        assert lo < out["macro_auroc"] < hi
        for entry in out["per_class"].values():
            assert entry["auroc_ci"][0] < entry["auroc"] < entry["auroc_ci"][1]
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_seeded_and_fast():
    y, s = _synthetic(200)
    start = time.perf_counter()
    first = evaluate_scores(y, s, CLASSES, bootstrap=1000, seed=7)
    assert time.perf_counter() - start < 2
    assert first == evaluate_scores(y, s, CLASSES, bootstrap=1000, seed=7)
    assert first["macro_auroc_ci"] != evaluate_scores(y, s, CLASSES, seed=8)["macro_auroc_ci"]
    assert first["bootstrap"] == {"resamples": 1000, "used": 1000, "seed": 7}


def test_unscorable_classes_are_noted_and_left_out_of_the_macro():
    y, s = _synthetic(200)
    y[:, 1] = 0
    y[:, 2] = 1
    out = evaluate_scores(y, s, CLASSES, bootstrap=50)
    b, c = out["per_class"]["B"], out["per_class"]["C"]
    assert b["auroc"] is None and b["auprc"] is None and b["auroc_ci"] is None
    assert b["note"] == "no positive in this split" and b["positives"] == 0
    assert c["note"] == "no negative in this split" and c["f1"] is not None
    scored = [out["per_class"][k]["auroc"] for k in ("A", "D", "E")]
    assert out["macro_auroc"] == pytest.approx(np.mean(scored))
    assert "note" not in out["per_class"]["A"]


def test_rare_class_skips_resamples():
    y, s = _synthetic(200)
    y[:, 0] = 0
    y[0, 0] = 1  # one positive: many resamples miss it
    out = evaluate_scores(y, s, CLASSES, bootstrap=200)
    assert 0 < out["bootstrap"]["used"] < 200
    assert out["per_class"]["A"]["auroc_ci"] is not None


def test_best_f1_thresholds():
    y, s = _synthetic(300)
    y[:, 4] = 0
    y[:, 3] = 0
    y[np.argsort(s[:, 3])[:4], 3] = 1  # 4 positives, the lowest scores: best F1 would be ~0
    cuts = best_f1_thresholds(y, s)
    assert cuts.shape == (5,) and cuts[4] == 0.5 and cuts[3] == 0.5
    for c in range(3):
        at_best = f1_score(y[:, c], s[:, c] >= cuts[c])
        assert at_best >= f1_score(y[:, c], s[:, c] >= 0.5)
    tuned = evaluate_scores(y, s, CLASSES, thresholds=cuts, bootstrap=0)
    assert tuned["per_class"]["A"]["threshold"] == pytest.approx(cuts[0])
    assert tuned["per_class"]["A"]["f1"] == pytest.approx(f1_score(y[:, 0], s[:, 0] >= cuts[0]))


def test_a_class_the_scores_do_not_separate_gets_no_fitted_threshold():
    # 10 positives scored like the negatives: the best F1 would flag nearly every record
    rng = np.random.default_rng(0)
    y = np.zeros((200, 2), dtype=int)
    y[:10, :] = 1
    s = rng.random((200, 2))
    s[:10, 1] += 1.0  # class 1 separates
    assert roc_auc_score(y[:, 0], s[:, 0]) < 0.7
    assert separable(y, s).tolist() == [False, True]
    cuts = best_f1_thresholds(y, s)
    assert cuts[0] == 0.5 and 1.0 <= cuts[1] < 1.5


def test_shape_errors():
    with pytest.raises(ValueError, match="same"):
        evaluate_scores(np.zeros((3, 2)), np.zeros((3, 3)), ("a", "b"))
    with pytest.raises(ValueError, match="classes"):
        evaluate_scores(np.zeros((3, 2)), np.zeros((3, 2)), ("a",))


def test_imports_without_torch():
    code = "import sys, bell_edge.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exclusive_pairs_are_never_together_where_independence_expects_five():
    from bell_edge.metrics import exclusive_pairs

    rng = np.random.default_rng(0)
    n = 400
    a = rng.random(n) < 0.3
    b = ~a & (rng.random(n) < 0.4)  # never with a; independence would expect ~30 together
    c = rng.random(n) < 0.5  # with both
    rare = np.zeros(n, dtype=bool)
    rare[np.flatnonzero(~a)[:10]] = True  # never with a, but only ~3 expected together
    y = np.stack([a, b, c, rare], axis=1).astype(float)
    assert exclusive_pairs(y, ["A", "B", "C", "RARE"]) == [["A", "B"]]
