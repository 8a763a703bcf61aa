"""Run a verified bundle's model on a registered backend (torch-free: what a monitor embeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bell_edge.runtime import backends
from bell_edge.runtime.bundle import Bundle, BundleError, Model, read_bundle

PRECISIONS = ("int8", "fp32")


def select_model(bundle: Bundle, backend: str, precision: str) -> Model:
    """The bundle's `precision` model that `backend` opens: one made for that backend first,
    then by the backend's format preference, then in table order."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    formats = backends.backend(backend).FORMATS
    fits = [m for m in bundle.models.values() if m.precision == precision and m.format in formats]
    if not fits:
        have = ", ".join(f"{m.name} ({m.precision} {m.format})" for m in bundle.models.values())
        raise BundleError(f"{bundle.root}: no {precision} model that backend {backend} opens "
                          f"(models: {have})")  # fmt: skip
    return min(fits, key=lambda m: (m.backend != backend, formats.index(m.format)))


class Engine:
    """A bundle's model in a backend session. INT8 on ONNX Runtime's CPU by default."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        backend: str = "ort-cpu",
        precision: str = "int8",
        threads: int = 1,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        self.model = select_model(self.bundle, backend, precision)
        self.backend, self.precision = backend, precision
        self.session = backends.open_model(backend, self.model.path, threads)
        self.classes = self.bundle.classes
        self.thresholds = self.bundle.thresholds

    def logits(self, windows: np.ndarray, masks: np.ndarray | None = None, batch: int = 256):
        """Logits `(N, C)` of preprocessed windows `(N, 12, T)`, lead masks `(N, 12)`."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        if masks is None:
            masks = np.ones(windows.shape[:2], dtype=np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        return np.concatenate([
            self.session.run(windows[i : i + batch], masks[i : i + batch])
            for i in range(0, len(windows), batch)
        ])  # fmt: skip

    def probabilities(
        self, windows: np.ndarray, masks: np.ndarray | None = None, batch: int = 256
    ) -> np.ndarray:
        """Sigmoid outputs `(N, C)` of preprocessed windows `(N, 12, T)`, lead masks `(N, 12)`."""
        return 1.0 / (1.0 + np.exp(-self.logits(windows, masks, batch)))
