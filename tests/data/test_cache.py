"""The preprocessed cache: content, reuse, skipped records, atomic writes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bell_edge.data.cache import CacheError, load, open_cache, prepare
from bell_edge.data.preprocess import preprocess_window
from bell_edge.data.records import read_record


def test_cache_matches_preprocessing(ptbxl_cache, ptbxl100):
    cache = ptbxl_cache
    assert cache.windows.shape == (1625, 12, 1000)
    assert len(cache.rows("train")) == 1442 and len(cache.rows("val")) == 183
    assert cache.labels.shape == (1625, 5) and cache.labels.sum(axis=1).min() >= 1
    row = 7
    rec = read_record(_path_of(ptbxl100, cache.record_ids[row]))
    expected, _ = preprocess_window(rec.signal, rec.fs, cache.config)
    np.testing.assert_array_equal(cache.windows[row], expected)


def _path_of(root, ecg_id):
    import csv

    with (root / "labels.csv").open() as f:
        for row in csv.DictReader(f):
            if row["ecg_id"] == ecg_id:
                return root / row["filename_lr"]
    raise KeyError(ecg_id)


def _mini(tmp_path, cpsc2018, names=("A1980", "A1981", "A1982")):
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        for f in cpsc2018.glob(name + ".*"):
            shutil.copy(f, src / f.name)
    return src


def test_second_prepare_is_a_no_op(tmp_path, cpsc2018):
    src = _mini(tmp_path, cpsc2018)
    first = prepare(src, tmp_path / "c", progress=False)
    mtime = (tmp_path / "c" / "windows.f32").stat().st_mtime_ns
    second = prepare(src, tmp_path / "c", progress=False)
    assert not first.reused and second.reused
    assert (tmp_path / "c" / "windows.f32").stat().st_mtime_ns == mtime
    # A changed source file changes the key: refused without force, rebuilt with it.
    (src / "A1982.hea").write_text((src / "A1982.hea").read_text() + "# edited\n")
    with pytest.raises(CacheError, match="use --force"):
        prepare(src, tmp_path / "c", progress=False)
    assert not prepare(src, tmp_path / "c", progress=False, force=True).reused


def test_broken_record_is_skipped_and_counted(tmp_path, cpsc2018):
    src = _mini(tmp_path, cpsc2018)
    dat = src / "A1981.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    result = prepare(src, tmp_path / "c", progress=False)
    assert [s["record"] for s in result.skipped] == ["A1981"]
    assert "truncated" in result.skipped[0]["error"]
    assert set(result.cache.record_ids) == {"A1980", "A1982"}
    assert open_cache(tmp_path / "c").meta["skipped"] == result.skipped
    for name in ("A1980", "A1982"):  # with no readable record left, the refusal says why
        (src / f"{name}.dat").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match=r"no readable record \(3 skipped; the first: .*truncated"):
        prepare(src, tmp_path / "d", progress=False)


def test_long_records_give_several_windows(tmp_path, cpsc2021):
    src = tmp_path / "src"
    src.mkdir()
    for f in cpsc2021.glob("data_101_6.*"):
        shutil.copy(f, src / f.name)
    cache = prepare(src, tmp_path / "c", progress=False).cache
    assert len(cache) == 22355 // 2000  # 111.8 s at 200 Hz: 11 full 10-s windows
    assert cache.lead_masks.sum(axis=1).tolist() == [2] * len(cache)
    assert np.all(cache.windows[:, 2:] == 0)


def test_failed_build_leaves_nothing(tmp_path, cpsc2018, monkeypatch):
    src = _mini(tmp_path, cpsc2018)
    import bell_edge.data.cache as cache_module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache_module, "_build", boom)
    with pytest.raises(RuntimeError):
        prepare(src, tmp_path / "c", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_load_accepts_a_cache_or_a_dataset(tmp_path, cpsc2018, monkeypatch):
    monkeypatch.setenv("BELL_EDGE_CACHE", str(tmp_path / "user-cache"))
    src = _mini(tmp_path, cpsc2018)
    via_dataset = load(src, progress=False)
    assert via_dataset.root.parent == tmp_path / "user-cache"
    assert load(via_dataset.root).root == via_dataset.root


def test_a_damaged_cache_is_refused_in_one_line(tmp_path, cpsc2018):
    import json

    cache = tmp_path / "c"
    prepare(_mini(tmp_path, cpsc2018), cache, progress=False)
    index = (cache / "index.json").read_text()
    (cache / "index.json").write_text(index[: len(index) // 2])  # truncated
    with pytest.raises(CacheError, match="damaged cache.*rebuild it with --force"):
        open_cache(cache)
    (cache / "index.json").write_text(index)
    meta = json.loads((cache / "meta.json").read_text())
    (cache / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "shape"}))
    with pytest.raises(CacheError, match="damaged cache.*'shape'"):
        open_cache(cache)
