"""Dataset layouts, detected from the folder, never asked for.

- `ptbxl`: the full PTB-XL release (`ptbxl_database.csv` + `scp_statements.csv`), aggregated to
  the diagnostic superclasses as in the PTB-XL benchmark (Strodthoff et al., 2020).
- `ptbxl-labels`: a `labels.csv` with superclass columns and a `split` column.
- `challenge`: PhysioNet Challenge 2020/21 folders (`# Dx:` SNOMED codes in the headers).
- `wfdb`: any other folder of WFDB records, searched recursively, unlabeled.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
from pathlib import Path

import numpy as np

from bell_edge.config import SUPERCLASSES
from bell_edge.errors import InputError

SPLITS = ("train", "val", "test", "all")
FOLD_SPLITS = {**dict.fromkeys(range(1, 9), "train"), 9: "val", 10: "test"}
LABELS_META_COLUMNS = {
    "ecg_id", "filename_lr", "filename_hr", "split", "strat_fold", "patient_id", "record",
}  # fmt: skip


class DatasetError(InputError):
    """A folder or label table that cannot be used; one line naming the file."""


@dataclasses.dataclass(frozen=True)
class RecordRef:
    record_id: str
    path: Path  # record path without extension
    split: str | None  # train | val | test, None where the layout has no splits
    labels: tuple[int, ...] | None  # multi-hot over Dataset.classes, None when unlabeled


@dataclasses.dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str
    classes: tuple[str, ...]
    records: tuple[RecordRef, ...]
    dropped: dict[str, int]  # reason -> count of records left out by the layout's rules

    @property
    def labeled(self) -> bool:
        return bool(self.classes)

    @property
    def has_splits(self) -> bool:
        return any(r.split is not None for r in self.records)

    def select(self, split: str) -> list[RecordRef]:
        """Records of a split; in a folder without splits every record is `train` (and `all`)."""
        if split not in SPLITS:
            raise DatasetError(f"{self.root}: unknown split {split!r} (use {', '.join(SPLITS)})")
        if split == "all":
            return list(self.records)
        if not self.has_splits:
            return list(self.records) if split == "train" else []
        return [r for r in self.records if r.split == split]

    def label_matrix(self, refs: list[RecordRef]) -> np.ndarray:
        return np.array([r.labels for r in refs], dtype=np.float32).reshape(len(refs), -1)


def open_dataset(path: str | Path, resolution: str = "lr") -> Dataset:
    """Detect the layout of `path` and index its records (headers are not read here)."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if (root / "ptbxl_database.csv").is_file():
        return _ptbxl(root, resolution)
    if (root / "labels.csv").is_file():
        return _labels_csv(root)
    headers = sorted(root.rglob("*.hea"))
    if not headers:
        raise DatasetError(f"{root}: no WFDB records (*.hea) found")
    if any(_dx_codes(h) for h in headers[:20]):
        return _challenge(root, headers)
    refs = tuple(RecordRef(_rel_id(root, h), h.with_suffix(""), None, None) for h in headers)
    return Dataset(root, "wfdb", (), refs, {})


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def _labels_csv(root: Path) -> Dataset:
    table = root / "labels.csv"
    rows = _read_csv(table)
    if not rows:
        raise DatasetError(f"{table}: no rows")
    columns = set(rows[0])
    unknown = columns - LABELS_META_COLUMNS - set(SUPERCLASSES)
    if unknown:
        raise DatasetError(
            f"{table}: unknown columns {', '.join(sorted(unknown))} "
            f"(expected ecg_id, filename_lr, split and {' '.join(SUPERCLASSES)})"
        )
    missing = {"filename_lr", *SUPERCLASSES} - columns
    if missing:
        raise DatasetError(f"{table}: missing columns {', '.join(sorted(missing))}")
    if not ({"split", "strat_fold"} & columns):
        raise DatasetError(f"{table}: needs a split or strat_fold column")
    refs = []
    for line, row in enumerate(rows, start=2):
        try:
            labels = tuple(int(float(row[c])) for c in SUPERCLASSES)
            split = row["split"] if "split" in row else FOLD_SPLITS[int(row["strat_fold"])]
        except (ValueError, KeyError):
            raise DatasetError(f"{table}:{line}: bad label, split or fold value") from None
        if split not in SPLITS[:3]:
            raise DatasetError(f"{table}:{line}: split {split!r} is not train, val or test")
        rel = row["filename_lr"]
        refs.append(RecordRef(row.get("ecg_id") or Path(rel).name, root / rel, split, labels))
    return Dataset(root, "ptbxl-labels", SUPERCLASSES, tuple(refs), {})


def _ptbxl(root: Path, resolution: str) -> Dataset:
    database, statements = root / "ptbxl_database.csv", root / "scp_statements.csv"
    if not statements.is_file():
        raise DatasetError(f"{statements}: missing (PTB-XL needs it to map codes to superclasses)")
    superclass = {}
    for row in _read_csv(statements):
        code = row.get("") or row.get("Unnamed: 0") or next(iter(row.values()))
        if _truthy(row.get("diagnostic")) and row.get("diagnostic_class") in SUPERCLASSES:
            superclass[code] = row["diagnostic_class"]
    column = f"filename_{resolution}"
    refs, dropped = [], {"no diagnostic superclass": 0}
    for line, row in enumerate(_read_csv(database), start=2):
        try:
            codes = ast.literal_eval(row["scp_codes"])  # a dict literal; never eval
            fold = int(float(row["strat_fold"]))
            rel = row[column]
        except (KeyError, ValueError, SyntaxError):
            raise DatasetError(f"{database}:{line}: bad scp_codes, strat_fold, {column}") from None
        present = {superclass[c] for c in codes if c in superclass}  # likelihood ignored
        if not present:
            dropped["no diagnostic superclass"] += 1
            continue
        labels = tuple(int(c in present) for c in SUPERCLASSES)
        ecg_id = str(int(float(row["ecg_id"])))
        refs.append(RecordRef(ecg_id, root / rel, FOLD_SPLITS.get(fold), labels))
    return Dataset(root, "ptbxl", SUPERCLASSES, tuple(refs), dropped)


def _challenge(root: Path, headers: list[Path]) -> Dataset:
    codes_by_record = {h: _dx_codes(h) for h in headers}
    classes = tuple(sorted({c for codes in codes_by_record.values() for c in codes}))
    refs = []
    dropped = {"no Dx codes": 0}
    for hea, codes in codes_by_record.items():
        if not codes:
            dropped["no Dx codes"] += 1
            continue
        labels = tuple(int(c in codes) for c in classes)
        refs.append(RecordRef(_rel_id(root, hea), hea.with_suffix(""), None, labels))
    return Dataset(root, "challenge", classes, tuple(refs), dropped)


def _dx_codes(hea: Path) -> set[str]:
    try:
        lines = hea.read_text(errors="replace").splitlines()
    except OSError:
        return set()
    for line in lines:
        text = line.lstrip("#").strip()
        if text.lower().startswith("dx:"):
            return {c.strip() for c in text[3:].split(",") if c.strip()}
    return set()


def _rel_id(root: Path, hea: Path) -> str:
    return hea.relative_to(root).with_suffix("").as_posix()


def _truthy(value: str | None) -> bool:
    try:
        return float(value or 0) == 1.0
    except ValueError:
        return False


def record_folds(path: str | Path) -> dict[str, int]:
    """PTB-XL's `strat_fold` of every record (patients never span two folds), by record id.

    From a PTB-XL release (`ptbxl_database.csv`) or a `labels.csv` with a `strat_fold` column.
    """
    root = Path(path)
    table = root / "ptbxl_database.csv"
    if not table.is_file():
        table = root / "labels.csv"
    rows = _read_csv(table) if table.is_file() else []
    if not rows or "strat_fold" not in rows[0]:
        raise DatasetError(f"{root}: no strat_fold column (a PTB-XL release layout has one)")
    try:
        return {str(int(float(r["ecg_id"]))): int(float(r["strat_fold"])) for r in rows}
    except (KeyError, ValueError):
        raise DatasetError(f"{table}: bad ecg_id or strat_fold value") from None
