"""Preprocess a dataset once into a memory-mapped float32 array plus an index.

A cache folder holds `windows.f32` (`(N, 12, T)` raw float32), `index.json` (one row per window:
record id, split, labels, lead mask, window start, source sha256) and `meta.json` (key, shape,
config, layout, skipped records). The key hashes the preprocessing config and every source file,
so a second `prepare` with nothing changed does no work. A cache is built in a temporary folder
and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bell_edge.config import CANONICAL_LEADS, PreprocessConfig, from_dict, to_dict
from bell_edge.data.datasets import (
    SPLITS,
    Dataset,
    DatasetError,
    RecordRef,
    open_dataset,
    parse_tasks,
)
from bell_edge.data.preprocess import record_windows
from bell_edge.data.records import RecordError, read_record
from bell_edge.errors import InputError
from bell_edge.files import holds_files, staged_dir

CACHE_VERSION = 2  # bump when reading or preprocessing changes what a record gives
WINDOWS_FILE, INDEX_FILE, META_FILE = "windows.f32", "index.json", "meta.json"


class CacheError(InputError):
    """A cache folder that cannot be used; one line naming it."""


@dataclasses.dataclass(frozen=True)
class WindowCache:
    root: Path
    windows: np.ndarray  # read-only memmap (N, 12, T) float32
    record_ids: np.ndarray  # (N,) str
    splits: np.ndarray  # (N,) str: train | val | test | "" (no splits)
    labels: np.ndarray  # (N, C) float32; C = 0 when unlabeled
    lead_masks: np.ndarray  # (N, 12) bool
    starts: np.ndarray  # (N,) window start, in samples at the source rate
    classes: tuple[str, ...]
    config: PreprocessConfig
    meta: dict

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def has_splits(self) -> bool:
        return bool((self.splits != "").any())

    def rows(self, split: str) -> np.ndarray:
        """Row indices of a split (the `Dataset.select` rule: no splits means all are train)."""
        if split not in SPLITS:
            raise CacheError(f"{self.root}: unknown split {split!r} (use {', '.join(SPLITS)})")
        if split == "all" or (split == "train" and not self.has_splits):
            return np.arange(len(self))
        return np.flatnonzero(self.splits == split)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_files(ref: RecordRef) -> list[Path]:
    """Header plus signal files of a record (those that exist)."""
    candidates = (ref.path.with_suffix(ext) for ext in (".hea", ".dat", ".mat"))
    return [p for p in candidates if p.is_file()]


def source_hash(ref: RecordRef) -> str:
    h = hashlib.sha256()
    for file in record_files(ref):
        h.update(file.name.encode() + b"\0" + file_sha256(file).encode())
    return h.hexdigest()


def cache_key(dataset: Dataset, hashes: list[str], cfg: PreprocessConfig) -> str:
    # The default labels (the superclasses) keep their v2 keys; other tasks are keyed by name.
    named = dataset.tasks not in ((), ("superdiagnostic",))
    tasks = f"|{','.join(dataset.tasks)}" if named else ""
    head = f"v{CACHE_VERSION}|{dataset.layout}{tasks}|{cfg.hash()}|{dataset.classes}"
    h = hashlib.sha256(head.encode())
    for ref, digest in zip(dataset.records, hashes, strict=True):
        h.update(f"{ref.record_id}|{ref.split}|{ref.labels}|{digest}\n".encode())
    return h.hexdigest()


def default_cache_root() -> Path:
    return Path(os.environ.get("BELL_EDGE_CACHE", Path.home() / ".cache" / "bell-edge"))


def _process(args: tuple[RecordRef, PreprocessConfig]) -> tuple | str:
    """Windows, lead mask, window starts and the count of zero-padded windows of one record,
    or its error message."""
    ref, cfg = args
    try:
        rec = read_record(ref.path)
        windows, valid, starts = record_windows(rec.signal, rec.fs, cfg)
        return windows, rec.lead_mask, starts, int((~valid).any(axis=1).sum())
    except RecordError as exc:
        return str(exc)


@dataclasses.dataclass(frozen=True)
class PrepareResult:
    cache: WindowCache
    reused: bool
    skipped: list[dict]


def prepare(
    data: str | Path | Dataset,
    out: str | Path,
    cfg: PreprocessConfig | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Build (or reuse) the cache of `data` in `out`."""
    cfg = cfg or PreprocessConfig()
    out = Path(out)
    is_cache_dir = (out / META_FILE).is_file()
    if holds_files(out) and not is_cache_dir and not force:  # before reading any record
        raise CacheError(f"{out}: exists and is not a cache (use --force to replace)")
    dataset = data if isinstance(data, Dataset) else open_dataset(data)
    workers = workers or min(os.cpu_count() or 1, 8)
    with _Pool(workers, len(dataset.records)) as pool:
        hashes = list(pool.map(source_hash, dataset.records))
        key = cache_key(dataset, hashes, cfg)
        if is_cache_dir:
            existing = _read_meta(out)
            if existing.get("key") == key:
                return PrepareResult(open_cache(out), True, existing.get("skipped", []))
            if not force:
                raise CacheError(f"{out}: holds a cache of other data or settings (use --force)")

        with staged_dir(out) as tmp:
            meta = _build(dataset, hashes, cfg, key, tmp, pool, progress)
    return PrepareResult(open_cache(out), False, meta["skipped"])


def _build(dataset, hashes, cfg, key, tmp: Path, pool: _Pool, progress) -> dict:
    columns = ("record_id", "split", "labels", "lead_mask", "start", "source_sha256")
    rows: dict[str, list] = {k: [] for k in columns}
    skipped = []
    jobs = [(ref, cfg) for ref in dataset.records]
    n = padded = 0
    with (tmp / WINDOWS_FILE).open("wb") as sink:
        results = pool.map(_process, jobs)
        for ref, digest, result in tqdm(
            zip(dataset.records, hashes, results, strict=True),
            total=len(jobs),
            desc="prepare",
            unit="rec",
            disable=not progress,
        ):
            if isinstance(result, str):
                skipped.append({"record": ref.record_id, "error": result})
                continue
            windows, mask, starts, short = result
            sink.write(windows.tobytes())
            n += len(windows)
            padded += short
            for start in starts:
                rows["record_id"].append(ref.record_id)
                rows["split"].append(ref.split or "")
                rows["labels"].append(list(ref.labels or ()))
                rows["lead_mask"].append(mask.tolist())
                rows["start"].append(start)
                rows["source_sha256"].append(digest)
    if n == 0:
        first = f"; the first: {skipped[0]['error']}" if skipped else ""
        raise DatasetError(f"{dataset.root}: no readable record ({len(skipped)} skipped{first})")
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "shape": [n, 12, cfg.window_samples],
        "source": str(dataset.root),
        "layout": dataset.layout,
        "tasks": list(dataset.tasks),
        "classes": list(dataset.classes),
        "preprocess": to_dict(cfg),
        "preprocess_hash": cfg.hash(),
        "records": len(dataset.records) - len(skipped),
        "padded_windows": padded,  # records shorter than one window, zero-padded; absent in
        # caches written before the count (the windows are the same, so the key did not change)
        "skipped": skipped,
        "dropped_by_layout": dataset.dropped,
    }
    (tmp / INDEX_FILE).write_text(json.dumps(rows))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


class _Pool:
    """Ordered `map` over a process pool when it pays (enough jobs and workers), else inline.

    Hashing and preprocessing both run here, so a large folder uses every core for both.
    """

    def __init__(self, workers: int, n_jobs: int) -> None:
        self.executor = None
        if workers > 1 and n_jobs >= 64:
            # fork starts workers at once; once torch (and its OpenMP threads) is loaded, a
            # forked child can deadlock, so fall back to a fork server.
            method = "forkserver" if "torch" in sys.modules else "fork"
            self.executor = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))

    def map(self, fn, jobs: list):
        if self.executor is None:
            return map(fn, jobs)
        return self.executor.map(fn, jobs, chunksize=32)

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


def _read_meta(root: Path) -> dict:
    try:
        return json.loads((root / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"{root / META_FILE}: unreadable cache metadata ({exc})") from None


def is_cache(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file() and (Path(path) / WINDOWS_FILE).is_file()


def open_cache(root: str | Path) -> WindowCache:
    root = Path(root)
    meta = _read_meta(root)
    if meta.get("version") != CACHE_VERSION:
        raise CacheError(f"{root}: cache version {meta.get('version')} is not {CACHE_VERSION}")
    try:
        shape, classes = tuple(meta["shape"]), tuple(meta["classes"])
        config = from_dict(PreprocessConfig, meta["preprocess"])
        index = json.loads((root / INDEX_FILE).read_text())
        columns = {
            "record_ids": np.array(index["record_id"], dtype=str),
            "splits": np.array(index["split"], dtype=str),
            "labels": np.array(index["labels"], dtype=np.float32).reshape(
                len(index["labels"]), len(classes)
            ),
            "lead_masks": np.array(index["lead_mask"], dtype=bool).reshape(-1, 12),
            "starts": np.array(index["start"], dtype=np.int64),
        }
    except (OSError, KeyError, TypeError, ValueError) as exc:  # JSON errors are ValueErrors
        raise CacheError(f"{root}: damaged cache ({exc!r}); rebuild it with --force") from None
    windows_file = root / WINDOWS_FILE
    if not windows_file.is_file() or windows_file.stat().st_size != int(np.prod(shape)) * 4:
        raise CacheError(f"{windows_file}: missing or of the wrong size")
    return WindowCache(
        root=root,
        windows=np.memmap(windows_file, dtype=np.float32, mode="r", shape=shape),
        classes=classes,
        config=config,
        meta=meta,
        **columns,
    )


def load(
    path: str | Path,
    cfg: PreprocessConfig | None = None,
    progress: bool = True,
    tasks: str | tuple[str, ...] | None = None,
) -> WindowCache:
    """A cache folder as is, or a dataset folder (labeled by `tasks`, default the layout's own
    labels) prepared into the user cache, reused; one cache slot per folder, settings and tasks."""
    cfg = cfg or PreprocessConfig()
    path = Path(path)
    tasks = parse_tasks(tasks)
    if is_cache(path):
        cache = open_cache(path)
        if cache.config != cfg:
            raise CacheError(f"{path}: prepared with other preprocessing settings than requested")
        if tasks and tuple(cache.meta.get("tasks", ())) != tasks:
            raise CacheError(f"{path}: prepared for tasks {cache.meta.get('tasks') or 'default'}, "
                             f"not {','.join(tasks)}")  # fmt: skip
        return cache
    dataset = open_dataset(path, tasks=tasks)
    label = "" if not tasks else "|" + ",".join(tasks)  # default tasks keep their old slot
    slot = hashlib.sha256(f"{dataset.root.resolve()}|{cfg.hash()}{label}".encode()).hexdigest()[:16]
    return prepare(dataset, default_cache_root() / slot, cfg, force=True, progress=progress).cache


def labeled_rows(cache: WindowCache, split: str, classes: tuple[str, ...], data) -> np.ndarray:
    """Rows of `split`, checked: labeled, classes as the model's, not empty."""
    if not cache.classes:
        raise InputError(f"{data}: unlabeled; evaluation needs labels")
    if tuple(cache.classes) != tuple(classes):
        raise InputError(
            f"{data}: classes {', '.join(cache.classes)} do not match the model's "
            f"{', '.join(classes)}"
        )
    rows = cache.rows(split)
    if len(rows) == 0:
        have = sorted(set(cache.splits) - {""}) or ["all"]
        raise InputError(f"{data}: no records in split {split!r} (it has: {', '.join(have)})")
    return rows


def lead_set_mask(masks: np.ndarray, leads: tuple[str, ...]) -> np.ndarray:
    """`masks` with every lead outside `leads` set False."""
    keep = np.isin(np.array(CANONICAL_LEADS), leads)
    return masks & keep[None, :]
