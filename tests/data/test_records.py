"""Reading real records, and each kind of broken record (built from the real ones)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.records import RecordError, canonical_lead, read_header, read_record


def test_ptbxl_record(ptbxl100):
    rec = read_record(ptbxl100 / "records100/00000/00024_lr.hea")
    assert rec.signal.shape == (12, 1000) and rec.signal.dtype == np.float32
    assert rec.fs == 100 and rec.lead_mask.all()


def test_two_lead_holter_gets_a_mask(cpsc2021):
    rec = read_record(cpsc2021 / "data_101_6")
    assert rec.signal.shape[0] == 12 and rec.fs == 200
    assert rec.lead_mask.tolist() == [True, True] + [False] * 10
    assert np.all(rec.signal[2:] == 0)


def test_fifteen_leads_drop_the_extras(ptbdb):
    rec = read_record(ptbdb / "s0010_re")
    assert rec.signal.shape == (12, 38400) and rec.lead_mask.all()
    assert rec.source_leads[-3:] == ("vx", "vy", "vz")


@pytest.mark.parametrize(
    "alias,name", [("i", "I"), ("AVR", "aVR"), ("avl", "aVL"), ("v1", "V1"), ("MLII", "II")]
)
def test_aliases(alias, name):
    assert canonical_lead(alias) == name
    assert name in CANONICAL_LEADS


def _copy(src: Path, dst: Path) -> Path:
    for f in src.parent.glob(src.name + ".*"):
        shutil.copy(f, dst / f.name)
    return dst / src.name


@pytest.fixture
def record(cpsc2018, tmp_path) -> Path:
    return _copy(cpsc2018 / "A1980", tmp_path)


def _edit_header(record: Path, edit) -> None:
    hea = record.with_suffix(".hea")
    hea.write_text(edit(hea.read_text()))


def _error(record: Path) -> str:
    with pytest.raises(RecordError) as info:
        read_record(record)
    message = str(info.value)
    assert "\n" not in message
    assert str(record.with_suffix(".hea")) in message or str(record) in message
    return message


def test_missing_dat(record):
    record.with_suffix(".dat").unlink()
    assert "missing" in _error(record)


def test_truncated_dat(record):
    dat = record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])
    assert "truncated" in _error(record)


def test_header_does_not_parse(record):
    _edit_header(record, lambda t: "A1980 twelve 500 5000\n" + t.split("\n", 1)[1])
    assert "does not parse" in _error(record)


def test_signal_count_disagrees(record):
    # The header claims 11 signals but lists 12 lines and the file holds 12 per frame.
    def drop_first_signal(text: str) -> str:
        lines = text.splitlines(keepends=True)
        return lines[0].replace("A1980 12 500", "A1980 11 500") + "".join(lines[2:])

    _edit_header(record, drop_first_signal)
    assert "header lists 11 signals in A1980.dat, the file holds 12" in _error(record)


def test_signal_count_line_disagrees(record):
    _edit_header(record, lambda t: t.replace("A1980 12 500", "A1980 11 500", 1))
    assert "declares 11 signals but describes 12" in _error(record)


def test_unknown_lead_name(record):
    _edit_header(record, lambda t: t.replace(" V3\n", " XQ7\n"))
    assert "unknown lead names 'XQ7'" in _error(record)


def test_nan_run(record, cpsc2018):
    # Format 16 stores NaN as -32768: overwrite 0.5 s of lead I.
    raw = np.fromfile(record.with_suffix(".dat"), dtype="<i2").reshape(-1, 12)
    raw[1000:1250, 0] = -32768
    raw.tofile(record.with_suffix(".dat"))
    assert "NaN run of 0.50 s" in _error(record)


def test_short_nan_gap_is_interpolated(record):
    raw = np.fromfile(record.with_suffix(".dat"), dtype="<i2").reshape(-1, 12)
    raw[1000:1005, 0] = -32768
    raw.tofile(record.with_suffix(".dat"))
    assert np.isfinite(read_record(record).signal).all()


def test_low_sampling_rate(record):
    _edit_header(record, lambda t: t.replace("A1980 12 500 5000", "A1980 12 40 5000", 1))
    assert "below 50 Hz" in _error(record)


def test_too_short(record):
    _edit_header(record, lambda t: t.replace("A1980 12 500 5000", "A1980 12 500 900", 1))
    assert "shorter than 2 s" in _error(record)


def test_missing_header(tmp_path):
    assert "no such header" in _error(tmp_path / "nothing")


def test_challenge_headers_all_read(cinc2021):
    # Georgia headers name the record `E00271.mat`; every header carries a `DD-Mon-YYYY` date.
    from bell_edge.data.inspect import inspect_folder

    report = inspect_folder(cinc2021)
    assert report["records"] == 75 and report["readable"] == 75, report["problems"][:3]


def test_challenge_record_matches_its_mat_file(cinc2021):
    from scipy.io import loadmat

    rec = read_record(cinc2021 / "E00271.hea")
    raw = loadmat(cinc2021 / "E00271.mat")["val"]  # (12, samples) int16, gain 1000/mV, baseline 0
    assert rec.lead_mask.all() and rec.signal.shape == raw.shape
    np.testing.assert_allclose(rec.signal, raw / 1000, atol=1e-6)


def test_challenge_date_is_a_date(cinc2021):
    header = read_header(cinc2021 / "E00271")
    assert str(header.base_date) == "2020-05-05" and str(header.base_time) == "14:50:55"
    assert header.sig_len == 5000 and header.fs == 500


def test_challenge_file_stays_as_it_was(cinc2021):
    hea = cinc2021 / "E00271.hea"
    before = hea.read_bytes()
    read_record(hea)
    assert hea.read_bytes() == before and before.startswith(b"E00271.mat 12 500 5000 05-May-2020")


@pytest.mark.parametrize(
    "first_line",
    [
        "E00271.mat twelve 500 5000 05-May-2020 14:50:55",  # not a count
        "E99999.mat 12 500 5000 05-May-2020 14:50:55",  # names another record
        "E00271.mat 12 500 5000 35-Foo-2020 14:50:55",  # not a date
    ],
)
def test_broken_challenge_header_is_refused(cinc2021, tmp_path, first_line):
    record = _copy(cinc2021 / "E00271", tmp_path)
    _edit_header(record, lambda t: first_line + "\n" + t.split("\n", 1)[1])
    assert "does not parse" in _error(record)
