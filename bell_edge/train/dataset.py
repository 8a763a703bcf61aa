"""A torch Dataset over the preprocessed cache (the cache itself stays torch-free)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from bell_edge.data.cache import WindowCache


class CacheDataset(Dataset):
    """Rows of a `WindowCache`: `(window (12, T) float32, lead_mask (12,) bool, labels (C,))`."""

    def __init__(self, cache: WindowCache, rows: np.ndarray | None = None) -> None:
        self.cache = cache
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        return (
            torch.from_numpy(np.array(self.cache.windows[row])),
            torch.from_numpy(self.cache.lead_masks[row].copy()),
            torch.from_numpy(self.cache.labels[row].copy()),
        )
