"""The one data resolver: --data, then $BELL_EDGE_DATA, then the checkout's ../shared/data."""

from __future__ import annotations

import pytest

from bell_edge.data import paths
from bell_edge.errors import InputError


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("BELL_EDGE_DATA", str(tmp_path / "env"))
    assert paths.resolve_data(tmp_path / "flag") == tmp_path / "flag"
    assert paths.resolve_data(None) == tmp_path / "env"
    monkeypatch.delenv("BELL_EDGE_DATA")
    assert paths.resolve_data(None) == paths.CHECKOUT_DATA / "ptbxl100"  # ../shared/data here
    release = paths.resolve_data(None, checkout_folder="ptbxl100-release")
    assert release == paths.CHECKOUT_DATA / "ptbxl100-release"
    monkeypatch.setattr(paths, "CHECKOUT_DATA", tmp_path / "missing")
    (tmp_path / "calib").mkdir()
    assert paths.resolve_data(None, [tmp_path / "gone", tmp_path / "calib"]) == tmp_path / "calib"
    with pytest.raises(InputError, match="bell-edge data download ptbxl") as info:
        paths.resolve_data(None, [tmp_path / "gone"])
    assert "\n" not in str(info.value)


def test_the_checkout_default_is_the_shared_subset(ptbxl100):
    assert (paths.CHECKOUT_DATA / "ptbxl100").resolve() == ptbxl100.resolve()
