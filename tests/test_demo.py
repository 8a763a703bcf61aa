"""The demo's choices that do not need a trained model, and its keyed stages."""

from __future__ import annotations

import json

from bell_edge import demo
from bell_edge.config import PretrainConfig, load_toml, replace
from bell_edge.data.records import read_header


def test_replays_the_longest_record_of_the_cpsc2018_folder_beside_the_data(ptbxl100, cpsc2018):
    chosen = demo.long_record(ptbxl100)
    assert chosen.parent == cpsc2018
    lengths = {p.stem: read_header(p).sig_len for p in cpsc2018.glob("*.hea")}
    assert lengths[chosen.name] == max(lengths.values())


def test_without_a_folder_beside_it_the_data_own_longest_record_is_used(ptbdb, tmp_path):
    (tmp_path / "data").symlink_to(ptbdb)
    assert demo.long_record(tmp_path / "data").name == "s0010_re"


def test_a_changed_budget_redoes_pretraining_and_the_same_one_reuses_it(
    tmp_path, tiny_config, ptbxl_cache, monkeypatch
):
    monkeypatch.setitem(demo.BUDGETS, "small", {"pretrain_epochs": 1, "finetune_epochs": 1})
    monkeypatch.setitem(demo.BUDGETS, "full", {"pretrain_epochs": 2, "finetune_epochs": 1})
    base = replace(load_toml(PretrainConfig, tiny_config), checkpoint_every=10_000)
    notes = []

    def pretrain(budget):
        run = demo.pretrain_demo(ptbxl_cache.root, tmp_path, demo.BUDGETS[budget],
                                 lambda stage, seconds, note: notes.append(note), base)  # fmt: skip
        return run, json.loads((run / "summary.json").read_text())

    run, small = pretrain("small")
    assert notes[-1].startswith("run (new)")
    written = (run / "encoder.pt").stat().st_mtime_ns
    assert pretrain("small")[1] == small
    assert notes[-1].startswith("reused (same config and inputs)")
    assert (run / "encoder.pt").stat().st_mtime_ns == written  # nothing retrained
    _, full = pretrain("full")
    assert notes[-1].startswith("run (config or inputs changed)")
    assert (small["epochs"], full["epochs"]) == (1, 2) and full["steps"] == 2 * small["steps"]
