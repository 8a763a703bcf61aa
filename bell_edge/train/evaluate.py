"""`bell-edge evaluate`: score a fine-tuned model (run dir or checkpoint) on a labeled split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.data import cache as data_cache
from bell_edge.data.cache import WindowCache
from bell_edge.metrics import evaluate_scores
from bell_edge.models.artifact import labeled_rows, load_classifier, per_record, predict


def score(
    cache: WindowCache, rows: np.ndarray, scores: np.ndarray, classes, thresholds, bootstrap: int
) -> dict[str, Any]:
    """Metrics per record (window scores averaged), with bootstrap CIs."""
    ids, rec_scores, labels = per_record(cache.record_ids[rows], scores, cache.labels[rows])
    result = evaluate_scores(labels, rec_scores, classes, thresholds, bootstrap=bootstrap)
    result["n_windows"] = int(len(rows))
    return result


def evaluate_bundle(
    bundle: str | Path, data: str | Path, split: str, precision: str, bootstrap: int
) -> dict[str, Any]:
    """The bundle's ONNX model (INT8 or FP32) through ONNX Runtime, scored as a torch run is."""
    from bell_edge.runtime.engine import Engine

    engine = Engine(bundle, precision=precision)
    cache = data_cache.load(data, engine.bundle.preprocess)
    rows = labeled_rows(cache, split, engine.classes, data)
    scores = engine.probabilities(cache.windows[rows], cache.lead_masks[rows])
    result = score(cache, rows, scores, engine.classes, engine.thresholds, bootstrap)
    return {
        "model": str(bundle),
        "precision": f"{precision} (onnxruntime)",
        "split": split,
        **result,
    }


def evaluate_run(
    model: str | Path,
    data: str | Path,
    split: str = "test",
    bootstrap: int = 1000,
    precision: str | None = None,
) -> dict[str, Any]:
    """A fine-tuned run or checkpoint (torch), or a bundle (ONNX Runtime; INT8 by default)."""
    if (Path(model) / "manifest.json").is_file():
        return evaluate_bundle(model, data, split, precision or "int8", bootstrap)
    clf = load_classifier(model)
    cache = data_cache.load(data, clf.preprocess)
    rows = labeled_rows(cache, split, clf.classes, data)
    scores = predict(clf.model, cache.windows[rows], cache.lead_masks[rows])
    result = score(cache, rows, scores, clf.classes, clf.thresholds, bootstrap)
    return {"model": str(model), "precision": "fp32 (torch)", "split": split, **result}
