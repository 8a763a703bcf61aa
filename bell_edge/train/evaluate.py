"""`bell-edge evaluate`: score a fine-tuned model (run dir or checkpoint) on a labeled split.

The data is labeled by the model's tasks (or `tasks`, a part of them); the model's columns of the
data's classes are scored. `leads` masks every other lead and applies that lead set's decision
thresholds (fitted on val with the same mask at fine-tuning); `positive_rate` is the share of
positive decisions over records and classes. A bundle is scored through the runtime alone: torch
is imported only for a torch run or checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.data import cache as data_cache
from bell_edge.data.cache import WindowCache, labeled_rows, lead_set_mask
from bell_edge.data.datasets import parse_tasks
from bell_edge.data.leads import parse_leads
from bell_edge.errors import InputError
from bell_edge.metrics import evaluate_scores, per_record


def score(
    cache: WindowCache, rows: np.ndarray, scores: np.ndarray, classes, thresholds, bootstrap: int
) -> dict[str, Any]:
    """Metrics per record (window scores averaged), with bootstrap CIs."""
    ids, rec_scores, labels = per_record(cache.record_ids[rows], scores, cache.labels[rows])
    result = evaluate_scores(labels, rec_scores, classes, thresholds, bootstrap=bootstrap)
    result["n_windows"] = int(len(rows))
    result["positive_rate"] = float(np.mean(rec_scores >= np.asarray(thresholds)[None, :]))
    return result


def _columns(model_classes, cache: WindowCache, data) -> np.ndarray:
    """The model's output column of each class of the data."""
    missing = [c for c in cache.classes if c not in model_classes]
    if missing:
        raise InputError(f"{data}: classes {', '.join(missing)} are not among the model's")
    return np.array([list(model_classes).index(c) for c in cache.classes], dtype=int)


def _lead_set(leads: str | None, by_set: dict, thresholds: np.ndarray, model) -> tuple:
    """(lead names or None, thresholds, lead-set name) for `--leads`."""
    if leads is None:
        return None, thresholds, "12 leads"
    try:
        names = parse_leads(leads)
    except ValueError as exc:
        raise InputError(f"--leads {leads}: {exc}") from None
    key = ",".join(names)
    if key not in by_set:
        have = ", ".join(by_set) or "none (fine-tuned before lead sets)"
        raise InputError(f"{model}: no thresholds for lead set {key} (it has: {have})")
    return names, np.asarray(by_set[key]["thresholds"], dtype=np.float32), key


def _prepare(model, data, split, tasks, model_tasks, classes, preprocess):
    tasks = parse_tasks(tasks) or parse_tasks(model_tasks)
    unknown = [t for t in tasks if model_tasks and t not in model_tasks]
    if unknown:
        raise InputError(f"{model}: not trained for task {', '.join(unknown)} "
                         f"(it has: {', '.join(model_tasks)})")  # fmt: skip
    cache = data_cache.load(data, preprocess, tasks=tasks)
    columns = _columns(classes, cache, data)
    rows = labeled_rows(cache, split, cache.classes, data)
    return cache, rows, columns, tasks


def _masked(cache: WindowCache, rows, names):
    windows, masks = cache.windows[rows], cache.lead_masks[rows]
    if names is None:
        return windows, masks
    masks = lead_set_mask(masks, names)
    return windows * masks[:, :, None].astype(windows.dtype), masks


def evaluate_bundle(
    bundle: str | Path,
    data: str | Path,
    split: str,
    precision: str,
    bootstrap: int,
    tasks: str | None = None,
    leads: str | None = None,
) -> dict[str, Any]:
    """The bundle's ONNX model (INT8 or FP32) through ONNX Runtime, scored as a torch run is."""
    from bell_edge.runtime.engine import Engine

    engine = Engine(bundle, precision=precision)
    manifest = engine.bundle.manifest
    model_tasks = tuple(manifest.get("training", {}).get("tasks", ()))
    cache, rows, cols, tasks = _prepare(bundle, data, split, tasks, model_tasks, engine.classes,
                                        engine.bundle.preprocess)  # fmt: skip
    names, thresholds, set_name = _lead_set(
        leads, manifest.get("lead_set_thresholds", {}), engine.thresholds, bundle
    )
    windows, masks = _masked(cache, rows, names)
    scores = engine.probabilities(windows, masks)[:, cols]
    result = score(cache, rows, scores, cache.classes, thresholds[cols], bootstrap)
    return {
        "model": str(bundle),
        "precision": f"{precision} (onnxruntime)",
        "split": split,
        "tasks": list(tasks),
        "leads": set_name,
        **result,
    }


def evaluate_run(
    model: str | Path,
    data: str | Path,
    split: str = "test",
    bootstrap: int = 1000,
    precision: str | None = None,
    tasks: str | None = None,
    leads: str | None = None,
) -> dict[str, Any]:
    """A fine-tuned run or checkpoint (torch), or a bundle (ONNX Runtime; INT8 by default)."""
    if (Path(model) / "manifest.json").is_file():
        return evaluate_bundle(model, data, split, precision or "int8", bootstrap, tasks, leads)
    from bell_edge.models.artifact import load_classifier, predict

    clf = load_classifier(model)
    model_tasks = tuple(clf.meta.get("tasks", ()))
    cache, rows, cols, tasks = _prepare(model, data, split, tasks, model_tasks, clf.classes,
                                        clf.preprocess)  # fmt: skip
    names, thresholds, set_name = _lead_set(
        leads, clf.meta.get("lead_set_thresholds", {}), clf.thresholds, model
    )
    windows, masks = _masked(cache, rows, names)
    scores = predict(clf.model, windows, masks)[:, cols]
    result = score(cache, rows, scores, cache.classes, thresholds[cols], bootstrap)
    return {"model": str(model), "precision": "fp32 (torch)", "split": split,
            "tasks": list(tasks), "leads": set_name, **result}  # fmt: skip
