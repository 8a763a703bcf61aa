"""Inference backends: one module per runtime, one line in REGISTRY.

A backend is a module with
- `FORMATS`: the model formats it opens (a bundle's `models` table names each model's), the
  preferred first;
- `open(path, threads=1, **options) -> Session`, where a Session's `run(ecg, lead_mask)` takes
  float32 windows `(N, leads, samples)` and lead masks `(N, leads)` and returns the logits
  `(N, classes)` as float32 numpy.

Modules import their runtime library only inside `open`, so the optional ones (TensorRT,
LiteRT) cost nothing where they are not installed and the runtime stays torch-free. The gate,
the parity check, `bench`, `profile` and the monitor all open models here: what the gate
approved is what the monitor runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from bell_edge.errors import InputError

REGISTRY = {
    "ort-cpu": "bell_edge.runtime.backends.ort_cpu",
    "ort-cuda": "bell_edge.runtime.backends.ort_cuda",
    "tensorrt": "bell_edge.runtime.backends.tensorrt",
    "litert": "bell_edge.runtime.backends.litert",
}


class Session(Protocol):
    def run(self, ecg: np.ndarray, lead_mask: np.ndarray) -> np.ndarray: ...


class BackendUnavailable(InputError):
    """A registered backend that cannot run here (library or device missing); one line."""


def backend(name: str) -> ModuleType:
    """The backend module registered as `name`."""
    if name not in REGISTRY:
        raise InputError(f"backend {name!r}: unknown (known: {', '.join(REGISTRY)})")
    return importlib.import_module(REGISTRY[name])


def open_model(name: str, path: str | Path, threads: int = 1, **options) -> Session:
    """A session of the model file `path` on backend `name`."""
    return backend(name).open(Path(path), threads, **options)


def as_inputs(ecg: np.ndarray, lead_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous float32 copies (or views) of a batch, as every backend takes them."""
    return (np.ascontiguousarray(ecg, dtype=np.float32),
            np.ascontiguousarray(lead_mask, dtype=np.float32))  # fmt: skip
