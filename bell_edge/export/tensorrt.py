"""TensorRT engines from the Q/DQ ONNX (explicit quantization), built by the runtime's tensorrt
backend. Optional: needs a GPU and the `tensorrt` and `cuda-python` packages, which the CPU
machines here lack."""

from __future__ import annotations

from pathlib import Path

from bell_edge.files import staged_file
from bell_edge.runtime.backends import tensorrt as backend


def require_tensorrt() -> None:
    """A one-line InputError (BackendUnavailable) unless TensorRT and a GPU are here."""
    backend.require()


def build_engine(onnx_path: str | Path, plan_path: str | Path, max_batch: int = 32) -> dict:
    """Serialize the engine of `model.int8.trt.onnx` (batch 1..max_batch) to `plan_path`."""
    trt, _ = backend.require()
    plan = backend.build_plan(onnx_path, max_batch)
    with staged_file(plan_path) as tmp:
        tmp.write_bytes(plan)
    return {"tensorrt": trt.__version__, "max_batch": max_batch}
