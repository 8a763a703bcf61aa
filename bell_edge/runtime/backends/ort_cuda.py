"""ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu and a CUDA GPU)."""

from __future__ import annotations

from pathlib import Path

from bell_edge.runtime.backends.ort import OrtSession

FORMATS = ("onnx",)


def open(path: Path, threads: int = 1, **options) -> OrtSession:  # noqa: A001 (the protocol)
    return OrtSession(path, threads, "CUDAExecutionProvider", **options)
