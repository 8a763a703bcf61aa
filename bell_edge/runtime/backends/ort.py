"""ONNX Runtime sessions, shared by the ort-cpu and ort-cuda backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from bell_edge.runtime.backends import BackendUnavailable, as_inputs

INPUT, MASK, OUTPUT = "ecg", "lead_mask", "logits"


class OrtSession:
    """One InferenceSession. `optimize=False` runs the graph as written (Q/DQ pairs as float
    ops: the exact quantized arithmetic, as TensorRT computes it); `config` takes session
    config entries (`session.x64quantprecision`, ...); `profile_prefix` turns ORT's profiler on."""

    def __init__(
        self,
        path: Path,
        threads: int,
        provider: str,
        optimize: bool = True,
        config: dict[str, str] | None = None,
        profile_prefix: str | None = None,
    ) -> None:
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(f"onnxruntime here has no {provider} (onnxruntime-gpu has)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        for key, value in (config or {}).items():
            options.add_session_config_entry(key, value)
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        self.session = ort.InferenceSession(str(path), options, providers=[provider])

    def run(self, ecg: np.ndarray, lead_mask: np.ndarray) -> np.ndarray:
        ecg, lead_mask = as_inputs(ecg, lead_mask)
        return self.session.run([OUTPUT], {INPUT: ecg, MASK: lead_mask})[0]
