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
import torch
from onnx import helper, numpy_helper

from bell_edge.errors import CheckFailed, InputError
from bell_edge.files import staged_file
from bell_edge.models.heads import ECGClassifier
from bell_edge.runtime.backends import open_model

INPUT, MASK, OUTPUT = "ecg", "lead_mask", "logits"
PARITY_ATOL = 1e-4


def export_fp32(
    model: ECGClassifier,
    path: str | Path,
    sample: np.ndarray,
    sample_mask: np.ndarray | None = None,
    opset: int = 17,
    conv2d: bool = False,
) -> dict:
    """Export `model` to `path` and check it against torch on `sample` `(N, 12, T)`.

    `conv2d`: write the graph with every conv as a 2-D conv of height 1 (`as_conv2d`), the
    form ONNX Runtime's CPU runs fastest in FP32 (measured: benchmarks/results/
    bench_ort_settings_*.md); the parity check runs on the graph written.

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
                if conv2d:
                    onnx.save(as_conv2d(onnx.load(tmp)), tmp)
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
    return {"max_abs_diff": diff, "opset": opset, "nodes": nodes, "conv": "2d" if conv2d else "1d"}


def run_onnx(
    path: str | Path,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    threads: int = 1,
    optimize: bool = True,
    batch: int = 256,
    backend: str = "ort-cpu",
) -> np.ndarray:
    """Logits of an exported model on a registered backend (ONNX Runtime's CPU by default),
    `batch` windows at a time.

    `optimize=False` (ONNX Runtime) runs Q/DQ nodes as float ops instead of fusing them into
    int8 kernels: the exact quantized arithmetic (as TensorRT computes it), free of CPU kernel
    saturation.
    """
    x, mask = _inputs(x, mask)
    options = {} if optimize else {"optimize": False}
    session = open_model(backend, path, threads, **options)
    parts = [session.run(x[i : i + batch], mask[i : i + batch]) for i in range(0, len(x), batch)]
    return np.concatenate(parts)


def as_conv2d(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network with every 1-D conv as a 2-D conv of height 1, in place.

    ONNX Runtime's NCHWc layout optimizer (AVX2/AVX-512 direct convolutions) handles 2-D convs
    only and leaves 1-D ones to im2col + GEMM. The tensor the lead Slices read gains a height
    axis of 1 (an Unsqueeze); adds, ReLUs, global pooling, the Concat and the Flatten work
    unchanged on 4-D tensors. Node names are kept, so quantization exclusions still apply.
    """
    g = model.graph
    weights = {w.name: w for w in g.initializer}
    slices = [n for n in g.node if n.op_type == "Slice"]
    sources = {n.input[0] for n in slices}
    if len(sources) != 1:
        raise InputError(f"as_conv2d: expected lead Slices of one tensor, found {sorted(sources)}")
    source = sources.pop()
    g.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "h_axis"))
    for n in slices:
        n.input[0] = f"{source}_h"
    for n in g.node:
        if n.op_type != "Conv":
            continue
        w = weights[n.input[1]]
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w)[:, :, None], w.name))
        for a in n.attribute:
            if a.name in ("kernel_shape", "strides", "dilations"):
                a.ints[:] = [1, a.ints[0]]
            elif a.name == "pads":
                a.ints[:] = [0, a.ints[0], 0, a.ints[1]]
    first = min(i for i, n in enumerate(g.node) if n.op_type == "Slice")
    g.node.insert(first, helper.make_node("Unsqueeze", [source, "h_axis"], [f"{source}_h"]))
    del g.value_info[:]
    return model


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


def _export(model: torch.nn.Module, example: tuple, tmp: Path, opset: int) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call, and the tracer flags
        # the encoder's shape check, which is constant for the fixed (12, T) input.
        for category in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        torch.onnx.export(
            model,
            example,
            tmp,
            input_names=[INPUT, MASK],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, MASK: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
