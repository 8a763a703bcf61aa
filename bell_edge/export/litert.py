"""LiteRT (TFLite) export: a float model converted by litert-torch, then full-integer INT8 by
ai-edge-quantizer (static range: per-channel symmetric int8 weights, per-tensor int8
activations), calibrated on the same unlabeled windows as the ONNX INT8 models.

Calibration ranges are the min/max of every activation over all calibration windows (as the
ONNX MinMax method), computed here from one float interpreter that keeps all its tensors:
ai-edge-quantizer's own calibrator walks the tensors in Python, about 9 s a window for this
model on one core, and keeps a moving average of the ranges, not their min/max.
Ops named in `float_ops` stay float (the gate's per-layer fallback): the quantizer puts
quantize/dequantize ops around them.
Optional: `pip install 'bell-edge[litert-convert]'`; imports happen inside the functions.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bell_edge.errors import CheckFailed, InputError
from bell_edge.files import staged_file
from bell_edge.models.heads import ECGClassifier
from bell_edge.runtime.backends import open_model

PARITY_ATOL = 1e-4
SIGNATURE = "serving_default"


def require_converter():
    """litert_torch and ai_edge_quantizer, or a one-line InputError naming the extra."""
    try:
        import ai_edge_quantizer
        import litert_torch
    except ImportError as exc:
        raise InputError(
            f"--litert: {exc.name} is not installed (pip install 'bell-edge[litert-convert]')"
        ) from None
    return litert_torch, ai_edge_quantizer


def export_float(model: ECGClassifier, path: str | Path, sample: np.ndarray, mask: np.ndarray):
    """A float `.tflite` of `model` at batch 1 (the form a monitor runs), written only once its
    logits on `sample` `(N, 12, T)` match torch within PARITY_ATOL through the litert backend."""
    litert_torch, _ = require_converter()
    model = model.eval()
    x, m = np.ascontiguousarray(sample, np.float32), np.ascontiguousarray(mask, np.float32)
    # litert-torch prints its progress to stdout, where it would break `--json`
    with staged_file(path) as tmp, contextlib.redirect_stdout(sys.stderr):
        edge = litert_torch.convert(model, (torch.from_numpy(x[:1]), torch.from_numpy(m[:1])))
        edge.export(str(tmp))
        with torch.no_grad():
            expected = model(torch.from_numpy(x), torch.from_numpy(m)).numpy()
        got = open_model("litert", tmp).run(x, m)
        diff = float(np.abs(got - expected).max())
        if not diff < PARITY_ATOL:
            raise CheckFailed(
                f"{path}: LiteRT logits differ from torch by {diff:.3g} (limit {PARITY_ATOL:g})"
            )
    return {"converter": "litert-torch", "max_abs_diff": diff, "bytes": Path(path).stat().st_size}


def _interpreter(path: Path, keep_tensors: bool = False):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=keep_tensors)
    it.allocate_tensors()
    return it


def _feeds(it) -> tuple[int, int]:
    """Input tensor indices (ecg, lead_mask) of a batch-1 model: the mask is the rank-2 one."""
    inputs = sorted(it.get_input_details(), key=lambda d: len(d["shape"]))
    return inputs[1]["index"], inputs[0]["index"]


def calibration_ranges(float_path: str | Path, windows: np.ndarray, masks: np.ndarray) -> dict:
    """`{tensor: {min, max, num_samples}}` of every float activation over all windows, in
    ai-edge-quantizer's calibration format."""
    require_converter()
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(float_path), recipe.static_wi8_ai8())
    it = _interpreter(Path(float_path), keep_tensors=True)
    ecg, mask = _feeds(it)
    names = {d["name"]: d["index"] for d in it.get_tensor_details()}
    # One window through the quantizer's calibrator names the tensors it wants ranges for.
    probe = _signature_inputs(it, windows[:1], masks[:1])
    wanted = [t for t in qt.calibrate({SIGNATURE: probe}, num_threads=1) if t in names]
    low = {t: np.inf for t in wanted}
    high = {t: -np.inf for t in wanted}
    for x, m in zip(windows, masks, strict=True):
        it.set_tensor(ecg, np.ascontiguousarray(x[None], np.float32))
        it.set_tensor(mask, np.ascontiguousarray(m[None], np.float32))
        it.invoke()
        for t in wanted:
            v = it.get_tensor(names[t])
            low[t], high[t] = min(low[t], float(v.min())), max(high[t], float(v.max()))
    shape = {t: (1,) * it.get_tensor(names[t]).ndim for t in wanted}
    return {t: {"min": np.full(shape[t], low[t], np.float32),
                "max": np.full(shape[t], high[t], np.float32),
                "num_samples": np.array(len(windows))} for t in wanted}  # fmt: skip


def _signature_inputs(it, windows: np.ndarray, masks: np.ndarray) -> list[dict]:
    inputs = it.get_signature_runner(SIGNATURE).get_input_details()
    mask_name, ecg_name = sorted(inputs, key=lambda n: len(inputs[n]["shape"]))
    return [{ecg_name: np.ascontiguousarray(x[None], np.float32),
             mask_name: np.ascontiguousarray(m[None], np.float32)}
            for x, m in zip(windows, masks, strict=True)]  # fmt: skip


def quantize_int8(
    float_path: str | Path,
    out_path: str | Path,
    ranges: dict,
    float_ops: Sequence[str] = (),
) -> dict:
    """Full-integer INT8 `.tflite` of a float one, from calibration `ranges`; the ops named
    (by `sensitive_ops` names) stay float. Returns the facts for the manifest."""
    require_converter()
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe

    qt = quantizer.Quantizer(str(float_path), recipe.static_wi8_ai8())
    for name in float_ops:
        qt.update_quantization_recipe(
            regex=f"^{re.escape(name)};",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE,
        )
    result = qt.quantize(ranges, enable_progress_report=False)
    with staged_file(out_path) as tmp:
        Path(tmp).write_bytes(result.quantized_model)
    return {
        "converter": "litert-torch + ai-edge-quantizer (static range)",
        "weights": "int8 per-channel symmetric",
        "activations": "int8 per-tensor",
        "calibration": "min/max over all windows",
        "float_ops": list(float_ops),
        "bytes": Path(out_path).stat().st_size,
    }


def sensitive_ops(
    float_path: str | Path,
    int8_path: str | Path,
    windows: np.ndarray,
    masks: np.ndarray,
    top: int = 5,
) -> list[str]:
    """The `top` activations (op output tensors, as `float_ops` takes them) whose INT8 values
    depart most from the float model's (lowest SQNR over `windows`)."""
    ref_it = _interpreter(Path(float_path), keep_tensors=True)
    q_it = _interpreter(Path(int8_path), keep_tensors=True)
    ref_names = {d["name"]: d["index"] for d in ref_it.get_tensor_details()}
    produced = {o for op in q_it._get_ops_details() for o in op["outputs"]}
    quantized = {d["name"]: d for d in q_it.get_tensor_details()
                 if d["index"] in produced and d["dtype"] == np.int8
                 and d["name"] in ref_names}  # fmt: skip
    signal = dict.fromkeys(quantized, 0.0)
    noise = dict.fromkeys(quantized, 0.0)
    feeds = [(it, _feeds(it), {d["index"]: d for d in it.get_input_details()})
             for it in (ref_it, q_it)]  # fmt: skip
    for x, m in zip(windows, masks, strict=True):
        for it, (ecg, mask), detail in feeds:
            it.set_tensor(ecg, _as_input(x[None], detail[ecg]))
            it.set_tensor(mask, _as_input(m[None], detail[mask]))
            it.invoke()
        for name, d in quantized.items():
            ref = ref_it.get_tensor(ref_names[name]).astype(np.float64)
            scale, zero = d["quantization"]
            got = (q_it.get_tensor(d["index"]).astype(np.float64) - zero) * scale
            signal[name] += float((ref * ref).sum())
            noise[name] += float(((ref - got) ** 2).sum())
    sqnr = {n: 10 * np.log10(signal[n] / noise[n]) if noise[n] > 0 else np.inf for n in signal}
    return sorted(sqnr, key=sqnr.get)[:top]


def _as_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float `x` as an input tensor takes it (quantized for an int8 input)."""
    x = np.ascontiguousarray(x, np.float32)
    if detail["dtype"] == np.float32:
        return x
    scale, zero = detail["quantization"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def arena_bytes(path: str | Path) -> dict:
    """Memory a TFLite Micro arena needs for this model's tensors, estimated from the graph.

    `activations`: the peak, over the ops in execution order, of the bytes of all non-constant
    tensors alive at that op (from the op that produces it, or the start for a graph input, to
    its last reader, or the end for a graph output): what an ideal memory planner must hold at
    once. TFLite Micro's greedy planner packs toward this peak; its own per-op and persistent
    allocations (a few KB) come on top. The weights stay in the model (flash), which TFLite
    Micro reads in place.
    """
    it = _interpreter(Path(path))
    details = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()
    produced = {o for op in ops for o in op["outputs"]}
    inputs = {d["index"] for d in it.get_input_details()}
    outputs = {d["index"] for d in it.get_output_details()}

    def nbytes(i: int) -> int:
        d = details[i]
        return int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize

    live = produced | inputs | outputs
    first = dict.fromkeys(inputs, -1)
    last = dict.fromkeys(outputs, len(ops))
    for k, op in enumerate(ops):
        for i in (*op["inputs"], *op["outputs"]):
            if i in live:
                first.setdefault(i, k)
                last[i] = max(last.get(i, k), k)
    peak = max(sum(nbytes(i) for i in live if first[i] <= k <= last[i]) for k in range(len(ops)))
    return {"activations": int(peak), "ops": len(ops)}
