"""Dataset layouts, detected from the folder, never asked for.

- `ptbxl`: the full PTB-XL release (`ptbxl_database.csv` + `scp_statements.csv`), labeled by the
  PTB-XL benchmark's tasks (Strodthoff et al., 2020): `superdiagnostic` (the 5 superclasses),
  `diagnostic`, `form`, `rhythm` (the SCP statements `scp_statements.csv` marks as such that occur
  in the data) and `all` (every statement); likelihoods are ignored, as in the benchmark.
- `ptbxl-labels`: a `labels.csv` with superclass columns and a `split` column (superdiagnostic).
- `challenge`: PhysioNet Challenge 2020/21 folders (`# Dx:` SNOMED codes in the headers): the raw
  codes by default, or the `rhythm` task, with the codes mapped to PTB-XL's rhythm names.
- `wfdb`: any other folder of WFDB records, searched recursively, unlabeled.

Several tasks combine: their classes are concatenated, and a record is kept when it has a label
of any of them. A task a layout cannot give is an error naming both.
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
TASKS = ("superdiagnostic", "diagnostic", "form", "rhythm", "all")
SCP_TASK_COLUMNS = {"diagnostic": "diagnostic", "form": "form", "rhythm": "rhythm"}
# SNOMED CT codes of the Challenge -> PTB-XL rhythm statement (AF, AFL, SR, STach, SB, SA)
CHALLENGE_RHYTHM = {
    "164889003": "AFIB", "164890007": "AFLT", "426783006": "SR",
    "427084000": "STACH", "426177001": "SBRAD", "427393009": "SARRH",
}  # fmt: skip
TASK_LABEL = {"superdiagnostic": "diagnostic superclass"}  # for the dropped-records reason
LAYOUT_TASKS = {"ptbxl": TASKS, "ptbxl-labels": ("superdiagnostic",), "challenge": ("rhythm",),
                "wfdb": ()}  # fmt: skip
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
    tasks: tuple[str, ...] = ()  # the label tasks asked for; () is the layout's own labels

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


def parse_tasks(tasks: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Task names, checked and deduplicated in order; "" or None is the layout's own labels."""
    if tasks is None:
        return ()
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    out = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in TASKS:
            raise DatasetError(f"task {name!r}: unknown (use {', '.join(TASKS)})")
        if name not in out:
            out.append(name)
    return tuple(out)


def open_dataset(
    path: str | Path, resolution: str = "lr", tasks: str | tuple[str, ...] | None = None
) -> Dataset:
    """Detect the layout of `path` and index its records (headers are not read here)."""
    root = Path(path)
    tasks = parse_tasks(tasks)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if (root / "ptbxl_database.csv").is_file():
        _check_tasks(root, "ptbxl", tasks)
        return _ptbxl(root, resolution, tasks or ("superdiagnostic",))
    if (root / "labels.csv").is_file():
        _check_tasks(root, "ptbxl-labels", tasks)
        return dataclasses.replace(_labels_csv(root), tasks=tasks)
    headers = sorted(root.rglob("*.hea"))
    if not headers:
        raise DatasetError(f"{root}: no WFDB records (*.hea) found")
    if any(_dx_codes(h) for h in headers[:20]):
        _check_tasks(root, "challenge", tasks)
        return _challenge(root, headers, tasks)
    _check_tasks(root, "wfdb", tasks)
    refs = tuple(RecordRef(_rel_id(root, h), h.with_suffix(""), None, None) for h in headers)
    return Dataset(root, "wfdb", (), refs, {})


def _check_tasks(root: Path, layout: str, tasks: tuple[str, ...]) -> None:
    for task in tasks:
        if task not in LAYOUT_TASKS[layout]:
            can = ", ".join(LAYOUT_TASKS[layout]) or "none (unlabeled)"
            raise DatasetError(f"{root}: task {task} cannot come from the {layout} layout "
                               f"(it gives: {can})")  # fmt: skip


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


def _ptbxl(root: Path, resolution: str, tasks: tuple[str, ...]) -> Dataset:
    database, statements = root / "ptbxl_database.csv", root / "scp_statements.csv"
    if not statements.is_file():
        raise DatasetError(f"{statements}: missing (PTB-XL needs it to map codes to classes)")
    superclass, task_codes = {}, {task: set() for task in TASKS}
    for row in _read_csv(statements):
        code = row.get("") or row.get("Unnamed: 0") or next(iter(row.values()))
        if _truthy(row.get("diagnostic")) and row.get("diagnostic_class") in SUPERCLASSES:
            superclass[code] = row["diagnostic_class"]
        for task, column in SCP_TASK_COLUMNS.items():
            if _truthy(row.get(column)):
                task_codes[task].add(code)
                task_codes["all"].add(code)
    column = f"filename_{resolution}"
    rows = []
    for line, row in enumerate(_read_csv(database), start=2):
        try:
            codes = ast.literal_eval(row["scp_codes"])  # a dict literal; never eval
            fold = int(float(row["strat_fold"]))
            rel = row[column]
        except (KeyError, ValueError, SyntaxError, AttributeError):
            raise DatasetError(f"{database}:{line}: bad scp_codes, strat_fold, {column}") from None
        present = set(codes)  # likelihood ignored, as in the benchmark
        present |= {superclass[c] for c in codes if c in superclass}
        rows.append((str(int(float(row["ecg_id"]))), root / rel, FOLD_SPLITS.get(fold), present))
    seen = set().union(*(present for *_, present in rows)) if rows else set()
    classes: list[str] = []
    for task in tasks:
        names = SUPERCLASSES if task == "superdiagnostic" else sorted(task_codes[task] & seen)
        classes += [c for c in names if c not in classes]
    what = "no " + " or ".join(TASK_LABEL.get(task, f"{task} label") for task in tasks)
    refs, dropped = [], {what: 0}
    for ecg_id, path, split, present in rows:
        labels = tuple(int(c in present) for c in classes)
        if not any(labels):
            dropped[what] += 1
            continue
        refs.append(RecordRef(ecg_id, path, split, labels))
    return Dataset(root, "ptbxl", tuple(classes), tuple(refs), dropped, tasks)


def _challenge(root: Path, headers: list[Path], tasks: tuple[str, ...]) -> Dataset:
    codes_by_record = {h: _dx_codes(h) for h in headers}
    if tasks:  # rhythm: the SNOMED codes mapped to PTB-XL's rhythm names
        classes = tuple(dict.fromkeys(CHALLENGE_RHYTHM.values()))
        names = {h: {CHALLENGE_RHYTHM[c] for c in codes if c in CHALLENGE_RHYTHM}
                 for h, codes in codes_by_record.items()}  # fmt: skip
        what = "no rhythm label"
    else:
        classes = tuple(sorted({c for codes in codes_by_record.values() for c in codes}))
        names, what = codes_by_record, "no Dx codes"
    refs = []
    dropped = {what: 0}
    for hea, present in names.items():
        if not present:
            dropped[what] += 1
            continue
        labels = tuple(int(c in present) for c in classes)
        refs.append(RecordRef(_rel_id(root, hea), hea.with_suffix(""), None, labels))
    return Dataset(root, "challenge", classes, tuple(refs), dropped, tasks)


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
