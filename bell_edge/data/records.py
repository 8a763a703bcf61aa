"""Read one WFDB record into the canonical 12-lead order.

Any record `wfdb` reads (`.dat`, `.mat` signal files) comes back as float32 `(12, samples)` with
a boolean lead mask: missing leads are zero rows, extra leads (Frank XYZ, ...) are dropped.
Every fault is a `RecordError` whose one-line message names the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import wfdb

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.leads import canonical_lead
from bell_edge.errors import InputError

MIN_FS = 50.0
MIN_SECONDS = 2.0
MAX_GAP_SECONDS = 0.05  # NaN runs up to this long are interpolated; longer ones are faults
RECORD_SUFFIXES = (".hea", ".dat", ".mat")  # a record named by one of its files

# The PhysioNet/CinC Challenge 2020/2021 record line: `NAME[.mat] N_SIG FS SIG_LEN DD-Mon-YYYY
# [HH:MM:SS]`. WFDB wants the bare record name and `HH:MM:SS DD/MM/YYYY`; wfdb refuses the
# `.mat` name (the Georgia headers) and misreads the date as a time (all of them).
_CHALLENGE_LINE = re.compile(
    r"(?P<name>[-\w]+?)(?:\.mat)?(?P<counts>[ \t]+\d+[ \t]+\d+(?:\.\d*)?[ \t]+\d+)"
    r"[ \t]+(?P<date>\d{1,2}-[A-Za-z]{3}-\d{4})(?:[ \t]+(?P<time>\d{1,2}:\d{2}:\d{2}))?[ \t]*"
)


class RecordError(InputError):
    """A record that cannot be used; the message is one line naming the file."""


@dataclasses.dataclass(frozen=True)
class Record:
    record_id: str
    path: Path  # record path without extension
    signal: np.ndarray  # float32 (12, samples), canonical lead order, zeros where missing
    fs: float
    lead_mask: np.ndarray  # bool (12,), True where the lead was recorded
    source_leads: tuple[str, ...]  # lead names as written in the header
    units: tuple[str, ...]
    comments: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.signal.shape[1] / self.fs


def record_path(path: str | Path) -> Path:
    """The record path without extension, from a path with or without `.hea`."""
    path = Path(path)
    if path.suffix in RECORD_SUFFIXES:
        path = path.with_suffix("")
    return path


def _check_header_exists(given: str | Path) -> Path:
    """The record path of `given`, whose header must exist; a file that is no part of a WFDB
    record (`notes.txt`) is named as such rather than as a missing `notes.hea`."""
    if Path(given).is_file() and Path(given).suffix not in RECORD_SUFFIXES:
        raise RecordError(f"{given}: not a WFDB record file (give its .hea or its name)")
    path = record_path(given)
    hea = path.with_suffix(".hea")
    if not hea.is_file():
        raise RecordError(f"{hea}: no such header file")
    return path


def read_header(path: str | Path) -> wfdb.Record:
    """Parse the header only; a missing or unparseable header is a RecordError."""
    path = _check_header_exists(path)
    hea = path.with_suffix(".hea")
    try:
        with _wfdb_view(path) as view:
            return wfdb.rdheader(str(view))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/... on bad headers
        raise RecordError(f"{hea}: header does not parse ({_reason(exc)})") from None


def standard_record_line(line: str, stem: str) -> str | None:
    """The WFDB form of a Challenge 2020/2021 record line (see `_CHALLENGE_LINE`) naming
    record `stem`; None for any other line, which wfdb then parses as it is."""
    match = _CHALLENGE_LINE.fullmatch(line.strip())
    if match is None or match["name"] != stem:
        return None
    try:
        date = datetime.datetime.strptime(match["date"], "%d-%b-%Y")
    except ValueError:
        return None
    return f"{stem}{match['counts']} {match['time'] or '00:00:00'} {date:%d/%m/%Y}"


@contextlib.contextmanager
def _wfdb_view(path: Path) -> Iterator[Path]:
    """`path` itself, or, for a Challenge header, the same record seen through a private
    temporary folder: its header with the record line in WFDB form, links to its signal files.
    The dataset's files are never edited."""
    hea = path.with_suffix(".hea")
    lines = hea.read_text(encoding="ascii", errors="ignore").splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip() and line[0] != "#"), None)
    standard = None if first is None else standard_record_line(lines[first], path.name)
    if standard is None:
        yield path
        return
    lines[first] = standard
    signal_files = {line.split()[0] for line in lines[first + 1 :] if line.strip()
                    and line[0] != "#"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bell-edge-hea-") as tmp:
        view = Path(tmp) / path.name
        view.with_suffix(".hea").write_text("\n".join(lines) + "\n")
        for name in signal_files:
            if Path(name).name == name and (path.parent / name).is_file():
                os.symlink((path.parent / name).resolve(), Path(tmp) / name)
        yield view


def lead_mapping(header: wfdb.Record, hea: Path) -> list[tuple[int, int]]:
    """(source column, canonical row) pairs; unknown names and duplicates are faults."""
    pairs: list[tuple[int, int]] = []
    seen: set[str] = set()
    unknown = []
    for column, name in enumerate(header.sig_name or []):
        try:
            canonical = canonical_lead(name)
        except KeyError:
            unknown.append(name)
            continue
        if canonical is None:
            continue
        if canonical in seen:
            raise RecordError(f"{hea}: lead {canonical} appears twice")
        seen.add(canonical)
        pairs.append((column, CANONICAL_LEADS.index(canonical)))
    if unknown:
        raise RecordError(f"{hea}: unknown lead names {', '.join(map(repr, unknown))}")
    if not pairs:
        raise RecordError(f"{hea}: none of the standard 12 leads is present")
    return pairs


def read_record(path: str | Path, keep_gaps: bool = False) -> Record:
    """Read a record, check it and map it to the canonical 12 leads. NaN runs longer than
    MAX_GAP_SECONDS are a fault, unless `keep_gaps` keeps every NaN as it is (the monitor's
    replay: its runtime flags a gap as a device would)."""
    path = _check_header_exists(path)
    hea = path.with_suffix(".hea")
    try:
        with _wfdb_view(path) as view:
            rec = wfdb.rdrecord(str(view), physical=True, return_res=32)
    except Exception as exc:  # diagnose from the header alone for a precise message
        header = read_header(path)
        _check_signal_files(header, path)
        raise RecordError(f"{hea}: signal does not read ({_reason(exc)})") from None
    fs = float(rec.fs or 0)
    if fs < MIN_FS:
        raise RecordError(f"{hea}: sampling rate {fs:g} Hz is below {MIN_FS:g} Hz")
    mapping = lead_mapping(rec, hea)
    _check_signal_files(rec, path)
    raw = rec.p_signal
    if raw is None or raw.ndim != 2 or raw.shape[1] != rec.n_sig:
        raise RecordError(f"{hea}: header lists {rec.n_sig} signals, the file holds another count")
    if raw.shape[0] < MIN_SECONDS * fs:
        raise RecordError(f"{hea}: {raw.shape[0] / fs:.2f} s long, shorter than {MIN_SECONDS:g} s")
    signal = np.zeros((len(CANONICAL_LEADS), raw.shape[0]), dtype=np.float32)
    mask = np.zeros(len(CANONICAL_LEADS), dtype=bool)
    for column, row in mapping:
        column_signal = raw[:, column]
        signal[row] = (
            column_signal if keep_gaps else _fill_gaps(column_signal, fs, hea, CANONICAL_LEADS[row])
        )
        mask[row] = True
    return Record(
        record_id=path.name,
        path=path,
        signal=signal,
        fs=fs,
        lead_mask=mask,
        source_leads=tuple(rec.sig_name),
        units=tuple(rec.units or ()),
        comments=tuple(rec.comments or ()),
    )


def _check_signal_files(header: wfdb.Record, path: Path) -> None:
    """Missing or truncated signal files, checked before wfdb reads them."""
    hea = path.with_suffix(".hea")
    if len(header.sig_name or []) != header.n_sig:
        raise RecordError(
            f"{hea}: header declares {header.n_sig} signals but describes {len(header.sig_name)}"
        )
    names = dict.fromkeys(header.file_name or [])
    for name in names:
        file = path.parent / name
        if not file.is_file():
            raise RecordError(f"{hea}: signal file {name} is missing")
    if header.sig_len and all(str(n).endswith(".dat") for n in names):
        # Format-16/212/... byte count per frame of each file, for a truncation check.
        bits = {"16": 16, "212": 12, "80": 8, "24": 24, "32": 32, "61": 16, "160": 16, "310": 10}
        for name in names:
            cols = [i for i, f in enumerate(header.file_name) if f == name]
            fmts = {str(header.fmt[i]) for i in cols}
            if len(fmts) != 1 or next(iter(fmts)) not in bits:
                continue
            offset = int((header.byte_offset or [0] * header.n_sig)[cols[0]] or 0)
            bits_per_signal = header.sig_len * bits[next(iter(fmts))]
            need = offset + len(cols) * bits_per_signal // 8
            have = (path.parent / name).stat().st_size
            if have < need:
                raise RecordError(
                    f"{path.parent / name}: truncated ({have} bytes, the header needs {need})"
                )
            held, rest = divmod((have - offset) * 8, bits_per_signal)
            if have > need and rest == 0:
                raise RecordError(
                    f"{hea}: header lists {len(cols)} signals in {name}, the file holds {held}"
                )


def _fill_gaps(x: np.ndarray, fs: float, hea: Path, lead: str) -> np.ndarray:
    """Interpolate NaN runs up to MAX_GAP_SECONDS; a longer run is a fault."""
    bad = np.isnan(x)
    if not bad.any():
        return x.astype(np.float32)
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    run = (ends[longest] - starts[longest]) / fs
    if run > MAX_GAP_SECONDS or bad.all():
        raise RecordError(
            f"{hea}: lead {lead} has a NaN run of {run:.2f} s at {starts[longest] / fs:.2f} s"
        )
    idx = np.arange(x.size)
    filled = x.copy()
    filled[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return filled.astype(np.float32)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
