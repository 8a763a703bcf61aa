"""The unlabeled pretraining corpus: windows from several folders, labels ignored.

Each folder is prepared into its cache (any layout `data.datasets` reads). A folder with splits
gives only its `split` rows (train), so val and test records never enter pretraining; a folder
without splits gives every record. `fraction` keeps a seeded share of the records (all windows of
a record together); the shares are nested, so 25% is inside 50% is inside 100%.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bell_edge.config import PreprocessConfig
from bell_edge.data import cache as data_cache
from bell_edge.data.cache import INDEX_FILE, WindowCache, file_sha256
from bell_edge.errors import InputError


@dataclasses.dataclass(frozen=True)
class Source:
    cache: WindowCache
    rows: np.ndarray  # rows of the cache in the corpus


class Corpus(Dataset):
    """`(window (12, T) float32, lead_mask (12,) bool)` over the rows of several caches."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self._offsets = np.cumsum([0] + [len(s.rows) for s in sources])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int):
        k = int(np.searchsorted(self._offsets, i, side="right")) - 1
        source = self.sources[k]
        row = source.rows[i - self._offsets[k]]
        return (
            torch.from_numpy(np.array(source.cache.windows[row])),
            torch.from_numpy(source.cache.lead_masks[row].copy()),
        )

    def manifest(self) -> list[dict]:
        """What each source gave, with the sha256 of its cache index (records, splits, hashes)."""
        out = []
        for s in self.sources:
            meta = s.cache.meta
            out.append({
                "path": str(meta["source"]),
                "layout": meta["layout"],
                "records": int(len(np.unique(s.cache.record_ids[s.rows]))),
                "windows": int(len(s.rows)),
                "records_skipped": len(meta.get("skipped", [])),
                "cache_key": meta["key"],
                "index_sha256": file_sha256(s.cache.root / INDEX_FILE),
                "labels_used": False,
            })  # fmt: skip
        return out


def load_corpus(
    folders: list[str | Path],
    preprocess: PreprocessConfig,
    split: str = "train",
    fraction: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> Corpus:
    if not folders:
        raise InputError("pretraining needs at least one --data folder")
    if not 0 < fraction <= 1:
        raise InputError(f"data_fraction {fraction}: must be in (0, 1]")
    sources = []
    for folder in folders:
        cache = data_cache.load(folder, preprocess, progress=progress)
        rows = cache.rows(split) if cache.has_splits else np.arange(len(cache))
        if len(rows) == 0:
            raise InputError(f"{folder}: no windows in split {split!r}")
        sources.append(Source(cache, rows))
    if fraction < 1:
        sources = _keep_records(sources, fraction, seed)
    return Corpus(sources)


def _keep_records(sources: list[Source], fraction: float, seed: int) -> list[Source]:
    """A seeded, nested share of the corpus' records, drawn over all folders together."""
    keys = [
        (k, rid) for k, s in enumerate(sources) for rid in np.unique(s.cache.record_ids[s.rows])
    ]
    # Rank by a hash of (seed, folder, record): the order does not depend on the fraction.
    rank = sorted(
        keys, key=lambda key: hashlib.sha256(f"{seed}|{key[0]}|{key[1]}".encode()).digest()
    )
    kept = set(rank[: max(1, math.ceil(fraction * len(rank)))])
    out = []
    for k, s in enumerate(sources):
        ids = s.cache.record_ids[s.rows]
        keep = np.array([(k, rid) in kept for rid in ids], dtype=bool)
        if keep.any():
            out.append(Source(s.cache, s.rows[keep]))
    return out
