"""`bell-edge monitor`: replays of real records, JSON lines, the plot, bad input."""

from __future__ import annotations

import json
import shutil
import time

from click.testing import CliRunner

from bell_edge.cli import main


def run(*args):
    return CliRunner().invoke(main, ["monitor", *(str(a) for a in args)])


def test_fifteen_lead_record_at_full_speed(ptbdb, tiny_bundle):
    result = run(ptbdb / "s0010_re", "--bundle", tiny_bundle, "--speed", "max")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    hops = [line for line in lines if " s  " in line and "|" in line]
    assert len(hops) == 38  # 38.4 s at 1 kHz, one line per 1-s hop
    assert "no analysis: warming up: 9.0 of 10 s buffered" in hops[8]
    assert all("12/12 leads ok" in line for line in hops)
    assert "leads I II III aVR aVL aVF V1 V2 V3 V4 V5 V6; 38 hops" in result.stdout
    assert "analysed 29 hops; no analysis: warming up 9" in result.stdout


def test_two_lead_holter_json_lines(cpsc2021, tiny_bundle, tmp_path):
    plot = tmp_path / "replay.png"
    result = run(
        cpsc2021 / "data_8_4", "--bundle", tiny_bundle, "--speed", "max", "--json",
        "--hop", "2", "--plot", plot,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    events, summary = rows[:-1], rows[-1]["summary"]
    assert len(events) == summary["hops"] == 20  # 41.2 s, 2-s hops
    assert [e["t"] for e in events] == [2.0 * k for k in range(1, 21)]
    assert summary["leads"] == ["I", "II"] and summary["analysed"] == 16
    for e in events[4:]:
        assert e["analysed"] and set(e["quality"]) == {"I", "II"}
        assert set(e["probabilities"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
        assert e["masked"] == ["III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary["plot"] == str(plot)
    again = run(cpsc2021 / "data_8_4", "--bundle", tiny_bundle, "--speed", "max", "--plot", plot)
    assert again.exit_code == 2 and "exists (use --force" in again.output


def test_real_time_replay_waits(cpsc2021, tiny_bundle):
    start = time.monotonic()
    result = run(cpsc2021 / "data_8_4", "--bundle", tiny_bundle, "--speed", "25", "--hop", "5")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start >= 41.175 / 25 - 0.05


def test_bad_input_is_one_line_exit_2(cpsc2021, tiny_bundle, tmp_path):
    record = cpsc2021 / "data_8_4"
    tampered = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    (tampered / "model.int8.onnx").write_bytes(b"not a model")
    cases = {
        "no such header": (tmp_path / "nothing", "--bundle", tiny_bundle),
        "sha256 does not match": (record, "--bundle", tampered),
        "--speed fast: expected a positive number or max": (
            record, "--bundle", tiny_bundle, "--speed", "fast",
        ),
        "hop_s 20 is longer than window_s 10": (record, "--bundle", tiny_bundle, "--hop", "20"),
    }  # fmt: skip
    for message, args in cases.items():
        result = run(*args)
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_annotations_write_a_wfdb_qrs_file_that_scores_against_the_reference(
    cpsc2021, tiny_bundle, tmp_path
):
    import numpy as np
    import wfdb
    from wfdb import processing

    record, out = cpsc2021 / "data_21_7", tmp_path / "new" / "folder"  # made as needed
    result = run(record, "--bundle", tiny_bundle, "--speed", "max", "--annotations", out,
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["annotations"] == str(out / "data_21_7.qrs")
    assert [p.name for p in out.iterdir()] == ["data_21_7.qrs"]  # nothing else left behind
    qrs = wfdb.rdann(str(out / "data_21_7"), "qrs")
    assert qrs.fs == 200 and qrs.aux_note[qrs.symbol.index("+")] == "(N"
    beats = np.array([s for s, y in zip(qrs.sample, qrs.symbol, strict=True) if y == "N"])
    ref = wfdb.rdann(str(record), "atr").sample  # to the record's end: the last beats too
    c = processing.compare_annotations(ref, beats, 30)
    assert c.tp / len(ref) > 0.99 and c.tp / len(beats) > 0.99
    assert abs(int(beats.max()) - int(ref.max())) < 30 and summary["beats"] == len(beats)
    again = run(record, "--bundle", tiny_bundle, "--speed", "max", "--annotations", out)
    assert again.exit_code == 2 and "exists (use --force" in again.output
    (tmp_path / "file").write_text("")
    a_file = run(record, "--bundle", tiny_bundle, "--speed", "max", "--annotations",
                 tmp_path / "file")  # fmt: skip
    assert a_file.exit_code == 2 and "not a folder" in a_file.output
    assert "Traceback" not in a_file.output


def test_alarm_settings_from_a_toml_file(cpsc2021, tiny_bundle, tmp_path):
    record = cpsc2021 / "data_8_4"  # about 66 bpm throughout

    def tachycardia(*extra):
        result = run(record, "--bundle", tiny_bundle, "--speed", "max", "--json", *extra)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.splitlines()[-1])["summary"]
        return [a for a in summary["alarms"] if a["name"] == "tachycardia"]

    settings = tmp_path / "alarms.toml"
    settings.write_text("tachy_bpm = 60\nbrady_bpm = 40\n")
    assert not tachycardia()
    raised = tachycardia("--alarms", settings)
    assert raised and "> 60" in raised[0]["reason"]

    bad = {
        "tachy_bpm = 60\nfoo = 1\n": "unknown setting foo in AlarmConfig (known: brady_bpm",
        "tachy_bpm = 40\nbrady_bpm = 50\n": "brady_bpm must be below tachy_bpm",
        "asystole_s = -1\n": "asystole_s must be a positive number",
        "tachy_bpm = \n": "not a TOML file",
    }
    for text, message in bad.items():
        settings.write_text(text)
        result = run(record, "--bundle", tiny_bundle, "--alarms", settings)
        assert result.exit_code == 2, (text, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert str(settings) in result.output
    result = run(record, "--bundle", tiny_bundle, "--alarms", tmp_path / "missing.toml")
    assert result.exit_code == 2 and "missing.toml: unreadable" in result.output


def test_a_nan_run_in_one_lead_is_a_gap_not_a_refusal(cpsc2021, tiny_bundle, tmp_path):
    """A record that training would refuse (2 s of NaN in lead II) replays: the monitor flags the
    lead as a device gap and goes on with lead I."""
    import numpy as np
    import wfdb

    rec = wfdb.rdrecord(str(cpsc2021 / "data_8_4"))
    x = rec.p_signal.copy()
    x[int(12 * rec.fs) : int(14 * rec.fs), 1] = np.nan
    wfdb.wrsamp("gap", fs=rec.fs, units=rec.units, sig_name=rec.sig_name, p_signal=x,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0],
                write_dir=str(tmp_path))  # fmt: skip
    result = run(tmp_path / "gap", "--bundle", tiny_bundle, "--speed", "max", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    flags = [e["quality"]["II"] for e in rows[:-1]]
    assert "gap" in flags[11:16] and flags[-1] == "ok"
    assert rows[-1]["summary"]["beats"] > 30
