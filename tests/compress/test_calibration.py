"""Calibration manifests on the real records: choice, round trip, refusal of changed files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bell_edge.compress.calibration import build_manifest, load_windows, save_manifest
from bell_edge.config import PreprocessConfig
from bell_edge.data.preprocess import record_windows
from bell_edge.data.records import read_record
from bell_edge.errors import InputError


@pytest.fixture()
def small_folder(ptbxl100, tmp_path) -> Path:
    """Three real PTB-XL records copied into a plain (unlabeled) folder."""
    folder = tmp_path / "data" / "three"
    folder.mkdir(parents=True)
    for hea in sorted((ptbxl100 / "records100" / "00000").glob("*.hea"))[:3]:
        shutil.copy(hea, folder)
        shutil.copy(hea.with_suffix(".dat"), folder)
    return folder


def test_windows_spread_over_train_records(ptbxl100) -> None:
    manifest = build_manifest(ptbxl100, "t", windows=24, seed=3)
    assert len(manifest["windows"]) == 24 and len(manifest["records"]) == 24
    with (ptbxl100 / "labels.csv").open() as f:
        split = {row["filename_lr"]: row["split"] for row in csv.DictReader(f)}
    assert {split[r["path"]] for r in manifest["records"]} == {"train"}
    files = manifest["records"][0]["files"]
    assert sorted(Path(n).suffix for n in files) == [".dat", ".hea"]
    assert all(len(digest) == 64 for digest in files.values())
    assert manifest["preprocess_hash"] == PreprocessConfig().hash()
    assert build_manifest(ptbxl100, "t", windows=24, seed=3) == manifest
    assert build_manifest(ptbxl100, "t", windows=24, seed=4)["records"] != manifest["records"]


def test_sources_share_windows_evenly(ptbxl100, cpsc2018) -> None:
    manifest = build_manifest([ptbxl100, cpsc2018], "mix", windows=10)
    assert [s["name"] for s in manifest["sources"]] == ["ptbxl100", "cpsc2018"]
    per_source = [manifest["records"][w["record"]]["source"] for w in manifest["windows"]]
    assert np.bincount(per_source).tolist() == [5, 5]
    windows, masks = load_windows(manifest)
    assert windows.shape == (10, 12, 1000) and masks.shape == (10, 12) and masks.all()
    assert np.isfinite(windows).all()


def test_round_trip_matches_training_preprocessing(cpsc2018, tmp_path) -> None:
    """Several windows per record when records run short; each equals `record_windows`."""
    manifest = build_manifest(cpsc2018, "cpsc", windows=14)
    assert len(manifest["records"]) == 10  # every record once before any twice
    path = tmp_path / "calibration" / "cpsc.json"
    save_manifest(manifest, path)
    windows, _ = load_windows(path)
    for row, window in enumerate(manifest["windows"]):
        rec = read_record(cpsc2018 / manifest["records"][window["record"]]["path"])
        expected, _, starts = record_windows(rec.signal, rec.fs, PreprocessConfig())
        np.testing.assert_array_equal(windows[row], expected[starts.index(window["start"])])


def test_roots_stored_relative_to_the_manifest(small_folder, tmp_path) -> None:
    path = tmp_path / "repo" / "calibration" / "three.json"
    save_manifest(build_manifest(small_folder, "three", windows=3), path)
    assert json.loads(path.read_text())["sources"][0]["root"] == "../../data/three"
    moved = tmp_path / "clone"
    shutil.copytree(tmp_path / "repo", moved / "repo")
    shutil.copytree(tmp_path / "data", moved / "data")
    shutil.rmtree(tmp_path / "data")
    windows, _ = load_windows(moved / "repo" / "calibration" / "three.json")
    assert windows.shape == (3, 12, 1000)
    windows, _ = load_windows(path, data_root=moved / "data")
    assert windows.shape == (3, 12, 1000)


def test_refuses_changed_or_missing_files(small_folder, tmp_path) -> None:
    path = tmp_path / "three.json"
    save_manifest(build_manifest(small_folder, "three", windows=3), path)
    dat = sorted(small_folder.glob("*.dat"))[1]
    data = bytearray(dat.read_bytes())
    data[100] ^= 1
    dat.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{dat.name}: sha256 differs") as exc:
        load_windows(path)
    assert "\n" not in str(exc.value)
    dat.unlink()
    with pytest.raises(InputError, match=rf"{dat.name}: missing"):
        load_windows(path)


def test_unreadable_records_are_skipped_and_listed(small_folder) -> None:
    broken = small_folder / "broken.hea"
    broken.write_text(
        sorted(small_folder.glob("*.hea"))[0].read_text().replace("_lr.dat", "_gone.dat")
    )
    # records are read lazily, in seeded order: seed 2 reaches the broken one
    manifest = build_manifest(small_folder, "three", windows=3, seed=2)
    assert len(manifest["records"]) == 3
    assert [(s["source"], s["record"]) for s in manifest["skipped"]] == [(0, "broken")]
    assert "signal file 00024_gone.dat is missing" in manifest["skipped"][0]["error"]
    with pytest.raises(InputError, match="asked for; unreadable records: 1, the first: .*gone"):
        build_manifest(small_folder, "too many", windows=10)  # the shortfall says why


def test_refusals(small_folder, tmp_path) -> None:
    path = tmp_path / "three.json"
    manifest = build_manifest(small_folder, "three", windows=3)
    save_manifest(manifest, path)
    with pytest.raises(InputError, match="exists"):
        save_manifest(manifest, path)
    save_manifest(manifest, path, force=True)
    with pytest.raises(InputError, match="only 3 windows available, 4 asked for"):
        build_manifest(small_folder, "three", windows=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no WFDB records"):
        build_manifest(tmp_path / "empty", "none")
    with pytest.raises(InputError, match="other preprocessing settings"):
        load_windows(path, cfg=PreprocessConfig(fs=250))


def test_a_damaged_manifest_is_refused_in_one_line(small_folder, tmp_path) -> None:
    path = tmp_path / "three.json"
    save_manifest(build_manifest(small_folder, "three", windows=3), path)
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "windows"}))
    with pytest.raises(InputError, match="three.json: calibration manifest without windows"):
        load_windows(path)
    path.write_text(json.dumps({**manifest, "sources": [{"name": "three"}]}))
    with pytest.raises(InputError, match="damaged source"):
        load_windows(path)


def test_build_refuses_a_name_with_folders_and_an_existing_manifest_at_once(
    small_folder, tmp_path
) -> None:
    from click.testing import CliRunner

    from bell_edge.cli import main

    args = ["calibration", "build", str(small_folder), "--windows", "3", "--dir", str(tmp_path)]
    for name in ("../escape", ""):
        bad = CliRunner().invoke(main, [*args, "--name", name])
        assert bad.exit_code == 2, bad.output
        assert bad.stderr.startswith(f"error: --name {name!r}: give a plain file name, not empty")
    assert not (tmp_path.parent / "escape.json").exists()
    (tmp_path / "three.json").write_text("{}")
    again = CliRunner().invoke(main, [*args, "--name", "three"])
    assert again.exit_code == 2 and "exists (use --force" in again.stderr
    assert (tmp_path / "three.json").read_text() == "{}"
