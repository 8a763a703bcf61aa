"""Static INT8 quantization of an exported FP32 model with ONNX Runtime (Q/DQ format).

Two variants, both with per-channel symmetric S8 weights, calibrated on real windows:
- `quantize_cpu`: U8 activations, the fast u8 x s8 kernels of x86 CPUs. Weights use 7 bits by
  default (`reduce_range`): x86 CPUs without VNNI (AVX2 only) saturate the int16 pair sums of
  u8 x s8 kernels with full 8-bit weights. Measured on an AVX2 EPYC (small 12-branch model,
  64 calibration windows): logits SQNR 15 dB with 8-bit weights against 37 dB with 7-bit ones,
  which lose nothing in emulation (37 dB either way);
- `quantize_trt`: symmetric S8 activations with zero-point 0 and FP32 biases, the form TensorRT's
  explicit quantization takes (`check_trt_qdq` verifies it without TensorRT). ORT's CPU int8
  kernels do badly on it (7 dB against 34 dB emulated, same machine), so judge it on a CPU
  with `run_onnx(..., optimize=False)`, which computes what TensorRT computes.

Ranges are always computed here (`calibration_ranges`) and handed to `quantize_static` as a
calibration cache: `quantize_static` does not pass `num_bins`/`num_quantized_bins` on, and its
Entropy calibration then silently returns the MinMax ranges.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    TensorsData,
    create_calibrator,
    quantize_static,
)
from onnxruntime.quantization.calibrate import save_tensors_data
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from bell_edge.errors import InputError
from bell_edge.export.onnx import INPUT, MASK

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
ENTROPY_BINS = (2048, 128)  # histogram bins, quantized bins (KL search, as TensorRT's)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


class WindowReader(CalibrationDataReader):
    """Feeds `(N, 12, T)` windows and `(N, 12)` lead masks as `{ecg, lead_mask}` batches."""

    def __init__(
        self, windows: np.ndarray, masks: np.ndarray | None = None, batch_size: int = 16
    ) -> None:
        if windows.ndim != 3 or len(windows) == 0:
            raise InputError(f"calibration windows: expected (N, 12, T), got {windows.shape}")
        self.windows = windows
        self.masks = np.ones(windows.shape[:2], np.float32) if masks is None else masks
        if self.masks.shape != windows.shape[:2]:
            raise InputError(f"calibration masks: expected {windows.shape[:2]}, got {masks.shape}")
        self.batch_size = batch_size
        self._next = 0

    def __len__(self) -> int:
        return -(-len(self.windows) // self.batch_size)

    def get_next(self) -> dict[str, np.ndarray] | None:
        start = self._next
        if start >= len(self.windows):
            return None
        self._next = stop = start + self.batch_size
        return {
            INPUT: np.ascontiguousarray(self.windows[start:stop], dtype=np.float32),
            MASK: np.ascontiguousarray(self.masks[start:stop], dtype=np.float32),
        }

    def chunks(self, size: int) -> Iterator[WindowReader]:
        """Readers over consecutive slices of about `size` windows (bounds calibration memory).

        Every batch within a reader has the same size, as ORT's histogram collectors require:
        a last partial batch comes as a reader of its own.
        """
        batch = self.batch_size
        step = max(batch, size // batch * batch)
        full = len(self.windows) // batch * batch
        bounds = [(a, min(a + step, full)) for a in range(0, full, step)]
        if full < len(self.windows):
            bounds.append((full, len(self.windows)))
        for start, stop in bounds:
            yield WindowReader(self.windows[start:stop], self.masks[start:stop], batch)


def quant_preprocess(fp32_path: str | Path, out_path: str | Path) -> None:
    """ORT's pre-quantization pass: symbolic shape inference and basic graph optimization."""
    quant_pre_process(str(fp32_path), str(out_path))


def calibration_ranges(
    model_path: str | Path,
    windows: np.ndarray,
    masks: np.ndarray | None = None,
    method: str = "minmax",
    symmetric: bool = False,
    entropy_bins: tuple[int, int] | None = None,
    chunk: int = 64,
) -> TensorsData:
    """Activation ranges of a (preprocessed) FP32 model over the calibration windows.

    `symmetric` ranges suit S8 activations only; ORT's own Percentile default is symmetric,
    which would waste half the U8 levels of every post-ReLU tensor. Data are collected `chunk`
    windows at a time (histograms merge across chunks). Entropy takes `entropy_bins` (default
    ENTROPY_BINS); ORT's KL search is pure Python, about 1 s per tensor at 2048 bins.
    """
    if method not in METHODS:
        raise InputError(f"calibration method {method!r}: use one of {', '.join(METHODS)}")
    options = {"symmetric": symmetric}
    if method == "entropy":
        bins, quantized_bins = entropy_bins or ENTROPY_BINS
        options |= {"num_bins": bins, "num_quantized_bins": quantized_bins}
    with tempfile.TemporaryDirectory(prefix="bell-edge-calib.") as tmp:
        calibrator = create_calibrator(
            Path(model_path),
            sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),  # as quantize_static
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=METHODS[method],
            extra_options=options,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print
            for reader in WindowReader(windows, masks).chunks(chunk):
                calibrator.collect_data(reader)
            return calibrator.compute_data()


def quantize_cpu(
    fp32_path: str | Path,
    out_path: str | Path,
    calib_windows: np.ndarray,
    calib_masks: np.ndarray | None = None,
    method: str = "minmax",
    exclude_nodes: Sequence[str] = (),
    reduce_range: bool = True,
) -> dict:
    """Q/DQ model for CPU runtimes: U8 activations, per-channel symmetric S8 weights.

    `reduce_range` keeps weights to 7 bits, safe on CPUs without VNNI (see the module doc).
    """
    return _quantize(
        fp32_path, out_path, calib_windows, calib_masks, method, exclude_nodes,
        QuantType.QUInt8, {"WeightSymmetric": True}, reduce_range,
    )  # fmt: skip


def quantize_trt(
    fp32_path: str | Path,
    out_path: str | Path,
    calib_windows: np.ndarray,
    calib_masks: np.ndarray | None = None,
    method: str = "minmax",
    exclude_nodes: Sequence[str] = (),
) -> dict:
    """Q/DQ model for TensorRT: S8 activations and weights, zero-point 0, FP32 biases."""
    options = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    return _quantize(
        fp32_path, out_path, calib_windows, calib_masks, method, exclude_nodes,
        QuantType.QInt8, options, reduce_range=False,
    )  # fmt: skip


def _quantize(
    fp32_path: str | Path,
    out_path: str | Path,
    windows: np.ndarray,
    masks: np.ndarray | None,
    method: str,
    exclude_nodes: Sequence[str],
    activation_type: QuantType,
    options: dict,
    reduce_range: bool,
) -> dict:
    """Preprocess, calibrate, quantize in a temporary folder beside `out_path`, then rename."""
    if not Path(fp32_path).is_file():
        raise InputError(f"{fp32_path}: no such model file")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        pre, cache, int8 = (Path(tmp) / n for n in ("pre.onnx", "ranges.json", "int8.onnx"))
        quant_preprocess(fp32_path, pre)
        symmetric = activation_type == QuantType.QInt8
        save_tensors_data(calibration_ranges(pre, windows, masks, method, symmetric), cache)
        quantize_static(
            pre,
            int8,
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude_nodes),
            calibrate_method=METHODS[method],
            extra_options=options,
            calibration_cache_path=cache,
        )
        os.replace(int8, out)
    return {
        "method": method,
        "activations": "uint8" if activation_type == QuantType.QUInt8 else "int8",
        "weights": f"int8 per-channel symmetric, {7 if reduce_range else 8} bits",
        "calibration_windows": len(windows),
        "excluded_nodes": list(exclude_nodes),
    }


def check_trt_qdq(path: str | Path) -> list[str]:
    """Violations of TensorRT's explicit-quantization rules in a Q/DQ model (empty = OK).

    Every QuantizeLinear/DequantizeLinear must be INT8 with a constant zero-point of 0, and
    every Conv, Gemm and MatMul must take its activation and weight through DequantizeLinear.
    """
    graph = onnx.load(str(path)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    faults = []
    for node in graph.node:
        if node.op_type in QDQ_OPS:
            zp = constants.get(node.input[2]) if len(node.input) > 2 else None
            if zp is None:
                faults.append(f"{node.name}: no constant zero-point (the default is uint8)")
            elif zp.dtype != np.int8:
                faults.append(f"{node.name}: {zp.dtype} zero-point, TensorRT needs int8")
            elif np.any(zp != 0):
                faults.append(f"{node.name}: zero-point {zp.ravel()[:4].tolist()} is not 0")
        elif node.op_type in WEIGHTED_OPS:
            for name, role in zip(node.input[:2], ("activation", "weight"), strict=False):
                source = producers.get(name)
                if source is None or source.op_type != "DequantizeLinear":
                    faults.append(f"{node.name}: {role} {name!r} is not dequantized")
    return faults


def sensitive_nodes(
    fp32_path: str | Path,
    int8_path: str | Path,
    windows: np.ndarray,
    masks: np.ndarray | None = None,
    top: int = 5,
    chunk: int = 8,
) -> list[str]:
    """The `top` nodes whose INT8 output activations depart most from FP32 (lowest SQNR).

    For every node output quantized in `int8_path`, the signal-to-quantization-noise ratio of
    the Q/DQ activation against the same tensor of the FP32 model, over all windows (ORT's
    `qdq_loss_debug` matching, accumulated `chunk` windows at a time to bound memory). The
    names are those of `int8_path`, as `exclude_nodes` takes them.
    """
    graph = onnx.load(str(int8_path), load_external_data=False).graph
    producer = {o: n.name for n in graph.node if n.op_type not in QDQ_OPS for o in n.output}
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bell-edge-sqnr.") as tmp:
        float_aug, qdq_aug = str(Path(tmp) / "fp32.onnx"), str(Path(tmp) / "int8.onnx")
        modify_model_output_intermediate_tensors(str(fp32_path), float_aug)
        modify_model_output_intermediate_tensors(str(int8_path), qdq_aug)
        for reader in WindowReader(windows, masks).chunks(chunk):
            again = WindowReader(reader.windows, reader.masks, reader.batch_size)
            matching = create_activation_matching(
                collect_activations(qdq_aug, reader), collect_activations(float_aug, again)
            )
            for tensor, match in matching.items():
                if tensor not in producer or "float" not in match:
                    continue
                ref = np.concatenate([a.ravel() for a in match["float"]]).astype(np.float64)
                got = np.concatenate([a.ravel() for a in match["post_qdq"]]).astype(np.float64)
                signal[tensor] = signal.get(tensor, 0.0) + float(ref @ ref)
                noise[tensor] = noise.get(tensor, 0.0) + float((ref - got) @ (ref - got))
    tensors = list(signal)
    with np.errstate(divide="ignore", invalid="ignore"):  # no noise: infinite SQNR
        sqnr = 10 * np.log10(np.array([signal[t] for t in tensors]) / [noise[t] for t in tensors])
    order = np.argsort(np.nan_to_num(sqnr, nan=np.inf), kind="stable")
    return [producer[tensors[i]] for i in order[:top]]
