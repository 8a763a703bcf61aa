"""Stratified label subsets of the ptbxl100 training split, and their manifests."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bell_edge.data.splits import label_subset, load_subset, save_subset, subset_rows
from bell_edge.errors import InputError


@pytest.fixture(scope="module")
def train(ptbxl_cache):
    rows = ptbxl_cache.rows("train")
    return ptbxl_cache.record_ids[rows], ptbxl_cache.labels[rows]


@pytest.mark.parametrize(("fraction", "tolerance"), [(0.01, 0.15), (0.1, 0.05)])
def test_subset_keeps_every_class_near_its_prevalence(train, fraction, tolerance):
    ids, labels = train
    idx = label_subset(ids, labels, fraction, seed=0)
    assert len(idx) == round(fraction * len(ids))
    assert np.array_equal(idx, np.unique(idx))
    assert (labels[idx].sum(axis=0) >= 1).all()
    assert np.abs(labels[idx].mean(axis=0) - labels.mean(axis=0)).max() < tolerance


def test_subset_is_seeded(train):
    ids, labels = train
    first = label_subset(ids, labels, 0.1, seed=0)
    np.testing.assert_array_equal(first, label_subset(list(ids), labels, 0.1, seed=0))
    assert not np.array_equal(first, label_subset(ids, labels, 0.1, seed=1))


def test_full_fraction_and_minimum_size(train):
    ids, labels = train
    np.testing.assert_array_equal(label_subset(ids, labels, 1.0, seed=3), np.arange(len(ids)))
    tiny = label_subset(ids, labels, 1e-6, seed=0)  # at least one record per class
    assert len(tiny) == labels.shape[1] and (labels[tiny].sum(axis=0) >= 1).all()


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_bad_fraction(train, fraction):
    with pytest.raises(ValueError, match="fraction"):
        label_subset(*train, fraction, seed=0)


def test_rare_class_kept():
    labels = np.zeros((500, 3), dtype=np.float32)
    labels[:, 0] = 1
    labels[7, 1] = labels[8, 2] = labels[9, 2] = 1
    ids = [f"r{i}" for i in range(500)]
    idx = label_subset(ids, labels, 0.01, seed=0)
    assert len(idx) == 5 and 7 in idx and labels[idx, 2].sum() >= 1


def test_records_with_several_windows_stay_together():
    ids = np.repeat([f"r{i}" for i in range(40)], 3)
    labels = np.repeat(np.eye(4, dtype=np.float32)[np.arange(40) % 4], 3, axis=0)
    idx = label_subset(ids, labels, 0.25, seed=0)
    chosen = np.unique(ids[idx])
    assert len(chosen) == 10 and len(idx) == 30
    np.testing.assert_array_equal(subset_rows(ids, chosen), idx)


def test_manifest_round_trip(train, tmp_path, ptbxl_cache):
    ids, labels = train
    idx = label_subset(ids, labels, 0.01, seed=0)
    path = tmp_path / "run" / "subset.json"
    saved = save_subset(
        path, ids[idx], 0.01, 0, "ptbxl100 train", labels=labels[idx], classes=ptbxl_cache.classes
    )
    manifest = load_subset(path)
    assert manifest == saved and list(path.parent.iterdir()) == [path]
    assert manifest["n"] == len(idx) and manifest["seed"] == 0 and manifest["fraction"] == 0.01
    assert manifest["positives"] == dict(
        zip(ptbxl_cache.classes, labels[idx].sum(axis=0).astype(int).tolist(), strict=True)
    )
    rows = subset_rows(ptbxl_cache.record_ids, manifest["record_ids"])
    np.testing.assert_array_equal(rows, ptbxl_cache.rows("train")[idx])


def test_subset_rows_rejects_unknown_ids():
    with pytest.raises(InputError, match="1 chosen record"):
        subset_rows(np.array(["a", "b"]), ["a", "zz"])


def test_load_subset_errors(tmp_path):
    bad = tmp_path / "subset.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="unreadable"):
        load_subset(bad)
    bad.write_text('{"record_ids": []}')
    with pytest.raises(InputError, match="not a subset manifest"):
        load_subset(bad)


def test_imports_without_torch():
    code = "import sys, bell_edge.data.splits; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
