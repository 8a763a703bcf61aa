"""LiteRT (TFLite) models with the `ai-edge-litert` interpreter, the runtime of Android
monitors (and, through TFLite Micro, of Cortex-M microcontrollers). Optional:
`pip install 'bell-edge[litert]'`.

Full-integer models may take int8 inputs and give int8 outputs: windows are quantized with
the model's input scale and zero-point, logits dequantized with its output's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bell_edge.runtime.backends import BackendUnavailable, as_inputs

FORMATS = ("tflite",)


def interpreter(path: Path, threads: int = 1):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise BackendUnavailable(
            "backend litert: ai-edge-litert is not installed (pip install 'bell-edge[litert]')"
        ) from None
    return Interpreter(model_path=str(path), num_threads=threads)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRTSession:
    """One interpreter; its input tensors are resized to each new batch size."""

    def __init__(self, path: Path, threads: int) -> None:
        self.interpreter = interpreter(path, threads)
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        by_rank = sorted(inputs, key=lambda d: len(d["shape"]))  # lead_mask (N, 12), ecg (N, 12, T)
        if len(inputs) != 2:
            raise BackendUnavailable(f"{path}: {len(inputs)} inputs, expected ecg and lead_mask")
        self.mask_in, self.ecg_in = by_rank
        self.out = self.interpreter.get_output_details()[0]
        self.batch = int(self.ecg_in["shape"][0])
        # litert-torch writes a fixed batch (its reshapes do not resize): run such a model
        # `batch` windows at a time.
        self.fixed = int(self.ecg_in["shape_signature"][0]) != -1

    def run(self, ecg: np.ndarray, lead_mask: np.ndarray) -> np.ndarray:
        ecg, lead_mask = as_inputs(ecg, lead_mask)
        it = self.interpreter
        if self.fixed and len(ecg) != self.batch:
            b = self.batch
            return np.concatenate([self.run(ecg[i : i + b], lead_mask[i : i + b])
                                   for i in range(0, len(ecg), b)])  # fmt: skip
        if len(ecg) != self.batch:
            it.resize_tensor_input(self.ecg_in["index"], ecg.shape)
            it.resize_tensor_input(self.mask_in["index"], lead_mask.shape)
            it.allocate_tensors()
            self.batch = len(ecg)
        it.set_tensor(self.ecg_in["index"], _quantize(ecg, self.ecg_in))
        it.set_tensor(self.mask_in["index"], _quantize(lead_mask, self.mask_in))
        it.invoke()
        return _dequantize(it.get_tensor(self.out["index"]), self.out)


def open(path: Path, threads: int = 1, **options) -> LiteRTSession:  # noqa: A001 (the protocol)
    return LiteRTSession(path, threads)
