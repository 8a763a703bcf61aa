"""LiteRT (TFLite) export with litert-torch: full-integer INT8, calibrated on real windows.

PT2E quantization (litert-torch's `PT2EQuantizer`, symmetric per-channel INT8 weights and
per-tensor INT8 activations from histogram observers) on the exported graph, calibrated on
the same unlabeled windows as the ONNX INT8 models, then converted by `litert_torch.convert`.
Modules named in `float_modules` are left unquantized (the gate's per-layer fallback).
Optional: `pip install 'bell-edge[litert-convert]'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bell_edge.errors import InputError
from bell_edge.files import staged_file
from bell_edge.models.heads import ECGClassifier

CALIBRATION_BATCH = 16


def require_converter():
    try:
        import litert_torch
        from litert_torch.quantize import pt2e_quantizer
        from torchao.quantization.pt2e import quantize_pt2e
    except ImportError as exc:
        raise InputError(
            f"--litert: {exc.name} is not installed (pip install 'bell-edge[litert-convert]')"
        ) from None
    return litert_torch, pt2e_quantizer, quantize_pt2e


def convert_int8(
    model: ECGClassifier,
    path: str | Path,
    windows: np.ndarray,
    masks: np.ndarray,
    float_modules: Sequence[str] = (),
) -> dict:
    """Write a full-integer INT8 `.tflite` of `model` (batch 1) to `path`; returns its facts."""
    litert_torch, pt2e, quantize_pt2e = require_converter()
    model = model.eval()
    sample = (torch.from_numpy(windows[:1].copy()), torch.from_numpy(masks[:1].copy()))
    quantizer = pt2e.PT2EQuantizer().set_global(
        pt2e.get_symmetric_quantization_config(is_per_channel=True)
    )
    for name in float_modules:
        quantizer.set_module_name(name, None)
    graph = torch.export.export(model, sample).module()
    graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(len(windows)):
            graph(torch.from_numpy(windows[i : i + 1]), torch.from_numpy(masks[i : i + 1]))
    graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
    edge = litert_torch.convert(graph, sample)
    with staged_file(path) as tmp:
        edge.export(str(tmp))
    return {"converter": "litert-torch", "calibration_windows": len(windows),
            "float_modules": list(float_modules), "bytes": Path(path).stat().st_size}  # fmt: skip


def convert_fp32(model: ECGClassifier, path: str | Path, sample: np.ndarray, mask: np.ndarray):
    """A float `.tflite` of `model` (batch 1): the converter's fidelity without quantization."""
    litert_torch, _, _ = require_converter()
    args = (torch.from_numpy(sample[:1].copy()), torch.from_numpy(mask[:1].copy()))
    edge = litert_torch.convert(model.eval(), args)
    with staged_file(path) as tmp:
        edge.export(str(tmp))
