"""Label tasks of the PTB-XL benchmark on the release layout, and the Challenge's rhythm names."""

from __future__ import annotations

import numpy as np
import pytest

from bell_edge.data import cache as data_cache
from bell_edge.data.datasets import DatasetError, open_dataset


def _count(ds, name):
    return int(ds.label_matrix(list(ds.records))[:, ds.classes.index(name)].sum())


def test_rhythm_task_counts_the_statements_of_the_release(ptbxl_release):
    ds = open_dataset(ptbxl_release, tasks="rhythm")
    assert {"AFIB", "SR", "STACH", "SBRAD", "SARRH"} <= set(ds.classes)
    assert "NORM" not in ds.classes and "PVC" not in ds.classes  # PVC is a form statement
    counts = {c: _count(ds, c) for c in ("SR", "AFIB", "SARRH", "STACH", "SBRAD")}
    assert counts == {"SR": 1308, "AFIB": 106, "SARRH": 60, "STACH": 59, "SBRAD": 35}
    assert len(ds.records) + ds.dropped["no rhythm label"] == 1625


def test_tasks_combine_and_the_default_is_superdiagnostic(ptbxl_release):
    default = open_dataset(ptbxl_release)
    both = open_dataset(ptbxl_release, tasks="superdiagnostic,rhythm")
    assert default.classes == ("NORM", "MI", "STTC", "CD", "HYP")
    assert both.classes[:5] == default.classes and "AFIB" in both.classes
    assert len(both.records) == 1625
    by_id = {r.record_id: r.labels[:5] for r in default.records}
    assert all(by_id[r.record_id] == r.labels[:5] for r in both.records)
    form, diag = open_dataset(ptbxl_release, tasks="form"), open_dataset(ptbxl_release, tasks="all")
    assert set(form.classes) < set(diag.classes) and "AFIB" in diag.classes


def test_challenge_rhythm_maps_snomed_codes_to_rhythm_names(cinc2021):
    ds = open_dataset(cinc2021, tasks="rhythm")
    assert ds.classes == ("AFIB", "AFLT", "SR", "STACH", "SBRAD", "SARRH")
    header = {r.record_id: r for r in ds.records}
    for ref in ds.records[:20]:
        text = ref.path.with_suffix(".hea").read_text()
        assert ("164889003" in text) == bool(header[ref.record_id].labels[0])


@pytest.mark.parametrize(
    ("fixture", "task", "layout"),
    [("ptbxl100", "rhythm", "ptbxl-labels"), ("cinc2021", "form", "challenge"),
     ("cpsc2021", "rhythm", "wfdb")],
)  # fmt: skip
def test_a_task_the_layout_cannot_give_is_refused(request, fixture, task, layout):
    root = request.getfixturevalue(fixture)
    with pytest.raises(DatasetError, match=f"task {task} cannot come from the {layout} layout"):
        open_dataset(root, tasks=task)
    with pytest.raises(DatasetError, match="task 'rythm': unknown"):
        open_dataset(root, tasks="rythm")


def test_the_cache_slot_and_key_depend_on_the_task(ptbxl_release):
    rhythm = data_cache.load(ptbxl_release, tasks="rhythm", progress=False)
    default = data_cache.load(ptbxl_release, progress=False)
    assert rhythm.root != default.root and rhythm.meta["key"] != default.meta["key"]
    assert rhythm.meta["tasks"] == ["rhythm"] and "AFIB" in rhythm.classes
    assert np.array_equal(default.labels, data_cache.load(ptbxl_release, progress=False).labels)
    with pytest.raises(data_cache.CacheError, match="prepared for tasks"):
        data_cache.load(rhythm.root, tasks="superdiagnostic")
