"""The accuracy gate: FP32 against INT8 on a labeled set, with sensitive nodes kept in FP32
until the macro AUROC drop is within bounds (or the gate fails)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.compress.quantize import sensitive_nodes
from bell_edge.export.onnx import run_onnx
from bell_edge.metrics import evaluate_scores, per_record


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Preprocessed labeled windows, scored per record."""

    windows: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    record_ids: np.ndarray
    classes: tuple[str, ...]


def onnx_scores(
    path: str | Path, windows: np.ndarray, masks: np.ndarray, backend: str = "ort-cpu"
) -> np.ndarray:
    """Sigmoid outputs of a model file on a registered backend (ONNX Runtime's CPU)."""
    return 1.0 / (1.0 + np.exp(-run_onnx(path, windows, masks, threads=2, backend=backend)))


def compare(
    fp32: np.ndarray, int8: np.ndarray, data: EvalSet, thresholds: np.ndarray, bootstrap: int
) -> dict[str, Any]:
    """Macro and per-class AUROC of both, their drops, and the share of changed decisions."""
    _, a, labels = per_record(data.record_ids, fp32, data.labels)
    _, b, _ = per_record(data.record_ids, int8, data.labels)
    m32 = evaluate_scores(labels, a, data.classes, thresholds, bootstrap=bootstrap)
    m8 = evaluate_scores(labels, b, data.classes, thresholds, bootstrap=bootstrap)
    per_class = {}
    for c in data.classes:
        x, y = m32["per_class"][c]["auroc"], m8["per_class"][c]["auroc"]
        per_class[c] = {"fp32": x, "int8": y, "drop": None if x is None else x - y}
    changed = float(((a >= thresholds) != (b >= thresholds)).mean())
    return {
        "n_records": int(len(labels)),
        "fp32": m32,
        "int8": m8,
        "macro_drop": m32["macro_auroc"] - m8["macro_auroc"],
        "per_class_drop": per_class,
        "changed_decisions": changed,
    }


def gated_quantize(
    fp32_path: Path,
    int8_path: Path,
    quantize: Callable[[tuple[str, ...]], Any],
    data: EvalSet,
    thresholds: np.ndarray,
    max_drop: float,
    rounds: int = 3,
    exclude_per_round: int = 3,
    bootstrap: int = 1000,
    backend: str = "ort-cpu",
    sensitive: Callable[[np.ndarray, np.ndarray], list[str]] | None = None,
) -> dict[str, Any]:
    """Quantize, measure, and while the macro drop exceeds `max_drop` keep the most sensitive
    nodes in FP32 and try again. Returns the last comparison with `passed` and `excluded`.

    The FP32 reference is the ONNX model `fp32_path` on ONNX Runtime's CPU; `int8_path` runs
    on `backend`, the one it ships for. `sensitive(windows, masks)` ranks the nodes of
    `int8_path` worst first, in the names `quantize` takes (default: `sensitive_nodes` of an
    ONNX Q/DQ model)."""
    if sensitive is None:

        def sensitive(windows, masks):
            return sensitive_nodes(fp32_path, int8_path, windows, masks, top=20)

    fp32 = onnx_scores(fp32_path, data.windows, data.masks)
    excluded: tuple[str, ...] = ()
    attempt = 0
    while True:
        attempt += 1
        quantize(excluded)
        int8 = onnx_scores(int8_path, data.windows, data.masks, backend)
        result = compare(fp32, int8, data, thresholds, bootstrap)
        result.update(excluded=list(excluded), attempts=attempt, max_drop=max_drop)
        result["passed"] = result["macro_drop"] <= max_drop
        if result["passed"] or attempt >= rounds:
            return result
        worst = sensitive(data.windows[:64], data.masks[:64])
        excluded = (*excluded, *[n for n in worst if n not in excluded][:exclude_per_round])
