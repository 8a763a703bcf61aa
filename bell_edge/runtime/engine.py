"""Run a verified bundle with ONNX Runtime (torch-free: what a bedside monitor embeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from bell_edge.runtime.bundle import Bundle, BundleError, read_bundle

MODEL_FILES = {"int8": "model.int8.onnx", "fp32": "model.onnx"}


class Engine:
    """A bundle's model in an ONNX Runtime session. INT8 by default, FP32 on request."""

    def __init__(self, bundle: str | Path | Bundle, precision: str = "int8", threads: int = 1):
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        if precision not in MODEL_FILES:
            raise ValueError(
                f"precision must be one of {', '.join(MODEL_FILES)}, got {precision!r}"
            )
        name = MODEL_FILES[precision]
        if name not in self.bundle.files:
            raise BundleError(f"{self.bundle.root}: has no {name} (export it with --int8)")
        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.bundle.files[name]), options, providers=["CPUExecutionProvider"]
        )
        self.classes = self.bundle.classes
        self.thresholds = self.bundle.thresholds

    def probabilities(
        self, windows: np.ndarray, masks: np.ndarray | None = None, batch: int = 256
    ) -> np.ndarray:
        """Sigmoid outputs `(N, C)` of preprocessed windows `(N, 12, T)`, lead masks `(N, 12)`."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if masks is None:
            masks = np.ones(windows.shape[:2], dtype=np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        logits = np.concatenate([
            self.session.run(
                ["logits"], {"ecg": windows[i : i + batch], "lead_mask": masks[i : i + batch]}
            )[0]
            for i in range(0, len(windows), batch)
        ])  # fmt: skip
        return 1.0 / (1.0 + np.exp(-logits))
