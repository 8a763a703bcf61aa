"""FP32 ONNX export of a classifier, checked against torch on real windows.

The graph takes `ecg` float32 `(batch, 12, T)` and `lead_mask` float32 `(batch, 12)` (1 = lead
present) and returns `logits` `(batch, n_classes)`; only the batch axis is dynamic (the
TorchScript exporter, `dynamo=False`: the dynamo exporter silently fixes every axis but batch,
and the TorchScript one folds BatchNorm into the convs in eval mode).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bell_edge.errors import CheckFailed, InputError
from bell_edge.files import staged_file
from bell_edge.models.heads import ECGClassifier

INPUT, MASK, OUTPUT = "ecg", "lead_mask", "logits"
PARITY_ATOL = 1e-4


def export_fp32(
    model: ECGClassifier,
    path: str | Path,
    sample: np.ndarray,
    sample_mask: np.ndarray | None = None,
    opset: int = 17,
) -> dict:
    """Export `model` to `path` and check it against torch on `sample` `(N, 12, T)`.

    `sample_mask` `(N, 12)` defaults to all leads present. The file is written only once the
    ONNX Runtime logits match torch within `PARITY_ATOL`; otherwise CheckFailed, with the figure.
    Returns `{"max_abs_diff", "opset", "nodes"}`.
    """
    path = Path(path)
    x, mask = _inputs(sample, sample_mask)
    was_training = model.training
    model.eval()
    try:
        with staged_file(path) as tmp:
            with torch.no_grad():
                _export(model, (torch.tensor(x[:2]), torch.tensor(mask[:2])), tmp, opset)
                expected = model(torch.tensor(x), torch.tensor(mask)).numpy()
            got = run_onnx(tmp, x, mask)
            diff = float(np.abs(got - expected).max())
            if not diff < PARITY_ATOL:
                raise CheckFailed(
                    f"{path}: ONNX logits differ from torch by {diff:.3g} (limit {PARITY_ATOL:g})"
                )
            nodes = len(onnx.load(tmp, load_external_data=False).graph.node)
    finally:
        model.train(was_training)
    return {"max_abs_diff": diff, "opset": opset, "nodes": nodes}


def run_onnx(
    path: str | Path,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    threads: int = 1,
    optimize: bool = True,
    batch: int = 256,
) -> np.ndarray:
    """Logits of an exported model (FP32 or Q/DQ) with ONNX Runtime on CPU, `batch` at a time.

    `optimize=False` runs Q/DQ nodes as float ops instead of fusing them into int8 kernels:
    the exact quantized arithmetic (as TensorRT computes it), free of CPU kernel saturation.
    """
    x, mask = _inputs(x, mask)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    parts = [
        session.run([OUTPUT], {INPUT: x[i : i + batch], MASK: mask[i : i + batch]})[0]
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts)


def _inputs(x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous float32 `(N, 12, T)` windows and `(N, 12)` masks (all ones by default)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or len(x) == 0:
        raise InputError(f"sample: expected windows (N, leads, samples), got shape {x.shape}")
    if mask is None:
        mask = np.ones(x.shape[:2], dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    if mask.shape != x.shape[:2]:
        raise InputError(f"sample_mask: expected shape {x.shape[:2]}, got {mask.shape}")
    return x, mask


def _export(model: torch.nn.Module, example: tuple, path: str, opset: int) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call, and the tracer flags
        # the encoder's shape check, which is constant for the fixed (12, T) input.
        for category in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        torch.onnx.export(
            model,
            example,
            path,
            input_names=[INPUT, MASK],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, MASK: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
