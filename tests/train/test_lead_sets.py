"""Tasks, lead dropout and per-lead-set thresholds through fine-tuning and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bell_edge.config import FinetuneConfig, PretrainConfig, load_toml, replace
from bell_edge.data.leads import LEAD_SETS
from bell_edge.models.artifact import load_classifier
from bell_edge.train.evaluate import evaluate_run
from bell_edge.train.finetune import finetune
from bell_edge.train.lead_sets import ALARM_FPR, alarm_thresholds, drop_leads


def test_lead_dropout_masks_and_zeroes_a_share_of_the_windows():
    x, mask = torch.ones(400, 12, 50), torch.ones(400, 12, dtype=torch.bool)
    out, kept = drop_leads(x, mask, 0.5, torch.Generator().manual_seed(0))
    n_kept = kept.sum(1)
    dropped = n_kept < 12
    assert 150 < int(dropped.sum()) < 250 and set(n_kept[dropped].tolist()) <= {2, 3}
    assert torch.equal(out.abs().sum(2) > 0, kept)  # masked leads are zero
    same, _ = drop_leads(x, mask, 0.0, torch.Generator())
    assert same is x


def test_alarm_thresholds_let_a_share_of_the_negatives_through():
    rng = np.random.default_rng(0)
    y = np.zeros((1000, 2), dtype=int)
    y[:100, 0] = 1
    y[:, 1] = 1  # no negative
    scores = rng.random((1000, 2))
    th = alarm_thresholds(y, scores, np.array([1.0, 1.0]))
    assert abs((scores[y[:, 0] == 0, 0] > th[0]).mean() - ALARM_FPR) < 0.005 and th[1] == 1.0


def test_an_alarm_threshold_is_never_above_the_decision_threshold():
    # a weak model: the 95th percentile of the negatives lies above the best-F1 threshold, and an
    # alarm that adds an independent test must not be less sensitive than the decision
    rng = np.random.default_rng(1)
    y = (rng.random((500, 1)) < 0.1).astype(int)
    scores = rng.random((500, 1))
    decision = np.array([0.3])
    assert np.quantile(scores[y[:, 0] == 0, 0], 1 - ALARM_FPR) > 0.3
    assert alarm_thresholds(y, scores, decision)[0] == 0.3


@pytest.mark.slow
def test_rhythm_model_carries_thresholds_per_lead_set(tmp_path, tiny_config, ptbxl_release):
    model = load_toml(PretrainConfig, tiny_config).model
    cfg = replace(FinetuneConfig(model=model, epochs=1, label_fraction=0.1),
                  tasks=("superdiagnostic", "rhythm"), lead_dropout=0.5)  # fmt: skip
    finetune(ptbxl_release, tmp_path / "run", cfg, progress=False)
    clf = load_classifier(tmp_path / "run")
    assert clf.classes[:5] == ("NORM", "MI", "STTC", "CD", "HYP") and "AFIB" in clf.classes
    assert clf.meta["tasks"] == ["superdiagnostic", "rhythm"]
    by_set = clf.meta["lead_set_thresholds"]
    assert set(by_set) == set(LEAD_SETS)
    assert all(len(v["thresholds"]) == len(clf.classes) for v in by_set.values())
    assert all(len(v["alarm_thresholds"]) == len(clf.classes) for v in by_set.values())
    full = evaluate_run(tmp_path / "run", ptbxl_release, "val", bootstrap=0)
    two = evaluate_run(tmp_path / "run", ptbxl_release, "val", bootstrap=0, leads="II,I")
    assert full["leads"] == "12 leads" and two["leads"] == "I,II"
    assert set(full["per_class"]) == set(clf.classes)
    assert 0 <= two["positive_rate"] <= 1 and full["macro_auroc"] != two["macro_auroc"]
    rhythm = evaluate_run(tmp_path / "run", ptbxl_release, "val", bootstrap=0, tasks="rhythm")
    assert "AFIB" in rhythm["per_class"] and "NORM" not in rhythm["per_class"]
    # every AFIB record has a rhythm label, so the rhythm task scores the same AFIB positives
    assert rhythm["per_class"]["AFIB"]["positives"] == full["per_class"]["AFIB"]["positives"] > 0
    assert rhythm["n_records"] < full["n_records"]
