"""`bell-edge data ...`: the reviewer's commands, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from bell_edge.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_inspect_ptbxl100_json(ptbxl100):
    result = run("data", "inspect", ptbxl100, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["records"] == 1625 and report["readable"] == 1625
    assert report["splits"] == {"train": 1442, "val": 183}
    assert report["labels_by_split"]["train"]["NORM"] > 0
    assert set(report["labels_total"]) == {"NORM", "MI", "STTC", "CD", "HYP"}


def test_inspect_other_folders(cpsc2018, cpsc2021, ptbdb):
    r2021 = json.loads(run("data", "inspect", cpsc2021, "--json").stdout)
    assert r2021["leads"] == {"2": 18} and r2021["rates_hz"] == {"200": 18}
    assert run("data", "inspect", cpsc2018).exit_code == 0
    single = run("data", "inspect", ptbdb / "s0010_re.hea", "--json")
    assert json.loads(single.stdout)["fs"] == 1000


def test_broken_record_is_one_line_exit_2(tmp_path, cpsc2018):
    for f in cpsc2018.glob("A1980.*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "A1980.dat").unlink()
    result = run("data", "inspect", tmp_path / "A1980")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "A1980.hea: signal file A1980.dat is missing" in result.stderr
    assert "Traceback" not in result.output


def test_folder_with_no_readable_record(tmp_path, cpsc2018):
    for f in cpsc2018.glob("A1980.*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "A1980.hea").write_text("garbage\n")
    result = run("data", "inspect", tmp_path)
    assert result.exit_code == 2
    assert "none of its 1 records is readable" in result.stderr


def test_missing_path(tmp_path):
    result = run("data", "inspect", tmp_path / "nope")
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_a_file_that_is_no_part_of_a_record_is_named_as_such(tmp_path, mitdb100):
    (tmp_path / "notes.txt").write_text("not an ECG")
    for path in (
        tmp_path / "notes.txt",
        mitdb100.with_suffix(".atr"),
    ):  # 100.hea is beside the second
        result = run("data", "inspect", path)
        assert result.exit_code == 2, result.output
        assert (
            result.stderr == f"error: {path}: not a WFDB record file (give its .hea or its name)\n"
        )
    assert run("data", "inspect", mitdb100.with_suffix(".dat")).exit_code == 0


def test_prepare_twice_is_a_no_op(tmp_path, cpsc2018):
    out = tmp_path / "cache"
    first = run("data", "prepare", cpsc2018, "--out", out, "--json")
    second = run("data", "prepare", cpsc2018, "--out", out, "--json")
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert json.loads(first.stdout)["reused"] is False
    assert json.loads(second.stdout)["reused"] is True
    assert json.loads(second.stdout)["windows"] == json.loads(first.stdout)["windows"]


def test_prepare_says_how_many_windows_it_zero_padded(tmp_path, cinc2021):
    from bell_edge.data.records import read_header

    short = sum(h.sig_len / h.fs < 20 for h in map(read_header, sorted(cinc2021.glob("*.hea"))))
    assert short > 0
    padded = run("data", "prepare", cinc2021, "--out", tmp_path / "c20", "--seconds", 20)
    assert padded.exit_code == 0, padded.output
    assert f"note: {short} windows zero-padded to 20 s" in padded.stderr
    whole = run("data", "prepare", cinc2021, "--out", tmp_path / "c10", "--json")
    assert json.loads(whole.stdout)["padded_windows"] == 0  # every record is at least 10 s


def test_a_reader_that_goes_away_ends_the_command_quietly(mitdb100):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "bell_edge.cli", "data", "inspect", str(mitdb100)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # gone before the first line is written, as `| head -0` would be
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 141, stderr
    assert stderr == ""
