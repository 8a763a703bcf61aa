"""The demo's choices that do not need a trained model: data resolution and the replayed record."""

from __future__ import annotations

import pytest

from bell_edge import demo
from bell_edge.data.records import read_header
from bell_edge.errors import InputError


def test_replays_the_longest_record_of_the_cpsc2018_folder_beside_the_data(ptbxl100, cpsc2018):
    chosen = demo.long_record(ptbxl100)
    assert chosen.parent == cpsc2018
    lengths = {p.stem: read_header(p).sig_len for p in cpsc2018.glob("*.hea")}
    assert lengths[chosen.name] == max(lengths.values())


def test_without_a_folder_beside_it_the_data_own_longest_record_is_used(ptbdb, tmp_path):
    (tmp_path / "data").symlink_to(ptbdb)
    assert demo.long_record(tmp_path / "data").name == "s0010_re"


def test_data_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("BELL_EDGE_DATA", str(tmp_path / "env"))
    assert demo.default_data(tmp_path / "flag") == tmp_path / "flag"
    assert demo.default_data(None) == tmp_path / "env"
    monkeypatch.delenv("BELL_EDGE_DATA")
    monkeypatch.setattr(demo, "DEFAULT_DATA", tmp_path / "missing")
    with pytest.raises(InputError, match="bell-edge data download ptbxl"):
        demo.default_data(None)
