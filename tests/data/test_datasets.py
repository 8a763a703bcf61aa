"""Layout detection and label aggregation, on the real folders and on layouts built from them."""

from __future__ import annotations

import csv
import shutil

import pytest

from bell_edge.data.datasets import DatasetError, open_dataset


def test_ptbxl100_labels_csv(ptbxl100):
    ds = open_dataset(ptbxl100)
    assert ds.layout == "ptbxl-labels"
    assert ds.classes == ("NORM", "MI", "STTC", "CD", "HYP")
    assert len(ds.records) == 1625
    assert len(ds.select("train")) == 1442 and len(ds.select("val")) == 183
    assert ds.select("test") == [] and len(ds.select("all")) == 1625
    assert all(sum(r.labels) >= 1 for r in ds.records)


def test_plain_folders_are_unlabeled(cpsc2018, cpsc2021, ptbdb):
    for root, n in ((cpsc2018, 10), (cpsc2021, 18), (ptbdb, 1)):
        ds = open_dataset(root)
        assert ds.layout == "wfdb" and not ds.labeled and len(ds.records) == n
        assert len(ds.select("train")) == n and ds.select("val") == []


def _full_ptbxl(tmp_path, ptbxl100, rows):
    shutil.copy(ptbxl100 / "scp_statements.csv", tmp_path / "scp_statements.csv")
    with (tmp_path / "ptbxl_database.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"])
        for ecg_id, codes, fold in rows:
            rel = f"records100/00000/{ecg_id:05d}_lr"
            w.writerow([f"{ecg_id}.0", codes, fold, rel, rel.replace("100", "500")])
    return tmp_path


def test_full_ptbxl_aggregates_superclasses(tmp_path, ptbxl100):
    rows = [
        (24, "{'NORM': 100.0, 'SR': 0.0}", 3),
        (43, "{'IMI': 15.0, 'LVH': 50.0}", 9),  # likelihood ignored: both count
        (44, "{'SR': 0.0}", 10),  # rhythm only: no diagnostic superclass, dropped
        (45, "{'NDT': 100.0, 'CLBBB': 100.0}", 10),
    ]
    ds = open_dataset(_full_ptbxl(tmp_path, ptbxl100, rows))
    assert ds.layout == "ptbxl"
    got = {r.record_id: (r.split, r.labels) for r in ds.records}
    assert got == {
        "24": ("train", (1, 0, 0, 0, 0)),
        "43": ("val", (0, 1, 0, 0, 1)),
        "45": ("test", (0, 0, 1, 1, 0)),
    }
    assert ds.dropped == {"no diagnostic superclass": 1}


def test_challenge_layout_keeps_snomed_codes(tmp_path, cpsc2018):
    for name, dx in (("A1980", "164889003,59118001"), ("A1981", "426783006")):
        for f in cpsc2018.glob(name + ".*"):
            shutil.copy(f, tmp_path / f.name)
        hea = tmp_path / f"{name}.hea"
        hea.write_text(hea.read_text() + f"# Dx: {dx}\n")
    ds = open_dataset(tmp_path)
    assert ds.layout == "challenge"
    assert ds.classes == ("164889003", "426783006", "59118001")
    assert {r.record_id: r.labels for r in ds.records} == {"A1980": (1, 0, 1), "A1981": (0, 1, 0)}


def test_labels_csv_with_unknown_columns(tmp_path, ptbxl100):
    text = (ptbxl100 / "labels.csv").read_text().splitlines()
    (tmp_path / "labels.csv").write_text(
        "\n".join([text[0] + ",AFIB"] + [line + ",0" for line in text[1:5]])
    )
    with pytest.raises(DatasetError, match=r"labels.csv: unknown columns AFIB"):
        open_dataset(tmp_path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no WFDB records"):
        open_dataset(tmp_path)
