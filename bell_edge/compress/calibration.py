"""Calibration-set manifests: which windows of which unlabeled records calibrate INT8 ranges.

A manifest lists, for one or more source folders (any layout `data.datasets` reads; labels are
ignored), the chosen records with the sha256 of each of their files, the window start of every
window (in samples at the record's own rate) and the preprocessing config. `load_windows`
re-reads the records, refuses any whose files changed, and preprocesses the windows exactly as
training does, so a committed manifest rebuilds the same calibration set on any clone.

Choice of windows (seeded): the sources take turns, one window each, so several sources share
the set evenly (a source that runs out leaves its turns to the others). Within a source, records
are visited in a seeded random order and give one random window each per round, so windows
spread over as many records as possible before a record gives a second one.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from bell_edge.config import PreprocessConfig, from_dict, to_dict
from bell_edge.data.cache import file_sha256, record_files
from bell_edge.data.datasets import RecordRef, open_dataset
from bell_edge.data.preprocess import preprocess_window, window_starts
from bell_edge.data.records import RecordError, read_record
from bell_edge.errors import InputError
from bell_edge.files import staged_file

MANIFEST_VERSION = 1
MANIFEST_KEYS = ("name", "preprocess", "preprocess_hash", "sources", "records", "windows")

PathLike = str | Path


def build_manifest(
    path: PathLike | Sequence[PathLike],
    name: str,
    windows: int = 512,
    seed: int = 0,
    split: str = "train",
    cfg: PreprocessConfig | None = None,
) -> dict:
    """Choose `windows` windows from one dataset folder or several (see the module doc).

    `split` applies to every source; `train` is every record of a folder without splits.
    Unreadable records are skipped and listed. Source roots are stored absolute here and made
    relative to the manifest's folder by `save_manifest`.
    """
    cfg = cfg or PreprocessConfig()
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or windows < 1:
        raise InputError(f"calibration {name!r}: needs a source folder and windows >= 1")
    sources, streams, skipped = [], [], []
    for index, root in enumerate(paths):
        dataset = open_dataset(root)
        refs = dataset.select(split)
        if not refs:
            raise InputError(f"{root}: no records in split {split!r}")
        sources.append({"name": Path(root).resolve().name, "root": str(Path(root).resolve())})
        rng = np.random.default_rng((seed, index))
        streams.append((index, dataset.root, _picks(refs, cfg, rng, skipped, index)))

    picked = []  # (source, record path relative to its root, start, ref)
    while len(picked) < windows and streams:
        for stream in list(streams):
            index, root, picks = stream
            ref, start = next(picks, (None, 0))
            if ref is None:
                streams.remove(stream)
                continue
            picked.append((index, ref.path.relative_to(root).as_posix(), start, ref))
            if len(picked) == windows:
                break
    if len(picked) < windows:
        where = ", ".join(str(p) for p in paths)
        why = (
            f"; unreadable records: {len(skipped)}, the first: {skipped[0]['error']}"
            if skipped
            else ""
        )
        raise InputError(f"{where}: only {len(picked)} windows available, {windows} asked for{why}")

    picked.sort(key=lambda p: p[:3])
    records: dict[tuple[int, str], int] = {}
    entries, chosen = [], []
    for index, rel, start, ref in picked:
        if (index, rel) not in records:
            records[index, rel] = len(entries)
            files = {f.name: file_sha256(f) for f in record_files(ref)}
            entries.append({"source": index, "path": rel, "files": files})
        chosen.append({"record": records[index, rel], "start": start})
    return {
        "version": MANIFEST_VERSION,
        "name": name,
        "seed": seed,
        "split": split,
        "preprocess": to_dict(cfg),
        "preprocess_hash": cfg.hash(),
        "sources": sources,
        "records": entries,
        "windows": chosen,
        "skipped": skipped,
    }


def _picks(
    refs: list[RecordRef],
    cfg: PreprocessConfig,
    rng: np.random.Generator,
    skipped: list[dict],
    source: int,
) -> Iterator[tuple[RecordRef, int]]:
    """(record, window start) pairs: round r gives the r-th random window of every record."""
    starts: dict[int, np.ndarray] = {}
    for i in rng.permutation(len(refs)):
        try:
            rec = read_record(refs[i].path)
        except RecordError as exc:
            skipped.append({"source": source, "record": refs[i].record_id, "error": str(exc)})
            continue
        starts[i] = rng.permutation(window_starts(rec.signal.shape[1], rec.fs, cfg))
        yield refs[i], int(starts[i][0])
    for r in itertools.count(1):
        rest = [i for i, s in starts.items() if len(s) > r]
        if not rest:
            return
        for i in rest:
            yield refs[i], int(starts[i][r])


def save_manifest(manifest: dict, path: PathLike, force: bool = False) -> None:
    """Write `manifest` as JSON atomically; source roots become relative to the manifest's
    folder where they share a parent folder (`../../shared/data/ptbxl100` from `calibration/`)."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path}: exists (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    sources = [{**s, "root": _relative(Path(s["root"]), base)} for s in manifest["sources"]]
    text = json.dumps({**manifest, "sources": sources}, indent=1) + "\n"
    with staged_file(path) as tmp:
        tmp.write_text(text)


def _relative(root: Path, base: Path) -> str:
    """`root` relative to `base` where they share a folder below the filesystem root."""
    try:
        shared = Path(os.path.commonpath([root, base]))
    except ValueError:  # another drive (Windows)
        return root.as_posix()
    if shared == Path(shared.anchor):
        return root.as_posix()
    return Path(os.path.relpath(root, base)).as_posix()


def read_manifest(path: PathLike) -> dict:
    """A manifest file, its version checked and its source roots resolved against its folder."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read calibration manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path}: not a calibration manifest of version {MANIFEST_VERSION}")
    if missing := [k for k in MANIFEST_KEYS if k not in manifest]:
        raise InputError(f"{path}: calibration manifest without {', '.join(missing)} (damaged?)")
    base = path.resolve().parent
    try:
        sources = [{**s, "root": str(base / s["root"])} for s in manifest["sources"]]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: calibration manifest with a damaged source ({exc!r})") from None
    return {**manifest, "sources": sources}


def load_windows(
    manifest: PathLike | dict,
    data_root: PathLike | None = None,
    cfg: PreprocessConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The manifest's windows `(N, 12, T)` float32 and lead masks `(N, 12)` bool.

    `manifest` is a file (relative roots resolve against its folder) or a dict (against the
    working directory). `data_root` overrides where the sources are: `data_root/<source name>`.
    Every file is checked against its sha256 before any is read; a changed or missing file is an
    InputError naming it. `cfg`, when given, must be the manifest's preprocessing.
    """
    label = str(manifest) if not isinstance(manifest, dict) else f"manifest {manifest['name']!r}"
    if not isinstance(manifest, dict):
        manifest = read_manifest(manifest)
    stored = from_dict(PreprocessConfig, manifest["preprocess"])
    if stored.hash() != manifest["preprocess_hash"]:
        raise InputError(f"{label}: preprocess config does not match its preprocess_hash")
    if cfg is not None and cfg != stored:
        raise InputError(f"{label}: built with other preprocessing settings than requested")
    roots = [
        Path(data_root) / s["name"] if data_root is not None else Path(s["root"])
        for s in manifest["sources"]
    ]
    paths = [roots[r["source"]] / r["path"] for r in manifest["records"]]
    for record, rec_path in zip(manifest["records"], paths, strict=True):
        for name, digest in record["files"].items():
            file = rec_path.parent / name
            if not file.is_file():
                raise InputError(f"{file}: missing (listed in calibration {label})")
            if file_sha256(file) != digest:
                raise InputError(f"{file}: sha256 differs from calibration {label} (file changed)")

    n, t = len(manifest["windows"]), stored.window_samples
    out = np.zeros((n, 12, t), dtype=np.float32)
    masks = np.zeros((n, 12), dtype=bool)
    by_record: dict[int, list[tuple[int, int]]] = {}
    for row, window in enumerate(manifest["windows"]):
        by_record.setdefault(window["record"], []).append((row, window["start"]))
    for index, rows in by_record.items():
        rec = read_record(paths[index])
        span = int(round(stored.window_s * rec.fs))
        for row, start in rows:
            out[row] = preprocess_window(rec.signal[:, start : start + span], rec.fs, stored)[0]
            masks[row] = rec.lead_mask
    return out, masks
