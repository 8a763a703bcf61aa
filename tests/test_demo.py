"""The demo's choices that do not need a trained model, and its keyed stages."""

from __future__ import annotations

import json

import pytest

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


def test_seed_comparison_pairs_each_seed_per_class_group_with_a_ci(tmp_path):
    """Per-seed val AUROCs of both inits, and paired gains whose sign follows the scores, for
    the superclasses, the other well-supported classes, and every class with a positive."""
    import numpy as np

    from bell_edge.train.finetune import VAL_SCORES

    classes = ("NORM", "MI", "AFIB", "SR", "BIGU", "AFLT")
    rng = np.random.default_rng(0)
    labels = rng.random((150, len(classes))) < 0.3
    labels[:, 4] = False
    labels[7, 4] = True  # one positive: only in the last group
    labels[:, 5] = False  # none: in no group
    runs = {}
    for seed in range(3):
        for name, signal in (("bell", 1.5), ("scratch", 0.3)):
            run = tmp_path / f"finetune-{name}-10pct-seed{seed}"
            run.mkdir()
            scores = signal * labels + rng.normal(size=labels.shape)
            np.savez(run / VAL_SCORES, record_ids=np.arange(len(labels)), scores=scores,
                     labels=labels.astype(float))  # fmt: skip
            runs[name, seed] = run
    rows = demo.seed_comparison(runs, tmp_path, classes)
    assert [r["classes"] for r in rows] == [
        ["NORM", "MI"],
        ["AFIB", "SR"],
        ["NORM", "MI", "AFIB", "SR", "BIGU"],
    ]
    for row in rows[:2]:
        assert row["seeds"] == [0, 1, 2]
        bell, scratch = row["bell_seeds"], row["scratch_seeds"]
        assert all(b > s for b, s in zip(bell, scratch, strict=True))
        assert row["gain_points"] == pytest.approx(100 * (np.mean(bell) - np.mean(scratch)))
        lo, hi = row["ci95_points"]
        assert 0 < lo < row["gain_points"] < hi
        assert demo.gain_text(row).startswith(f"{row['gain_points']:+.2f} points [")


def test_the_bundle_summary_reads_a_real_bundle(tiny_bundle):
    from bell_edge.runtime.bundle import read_bundle

    bundle = read_bundle(tiny_bundle)
    s = demo.bundle_summary(bundle)
    per_class = bundle.manifest["metrics"]["per_class"]
    scored = [c for c, m in per_class.items() if m["fp32"] is not None]
    assert s["bundle_classes_scored"] == len(scored) > 0
    assert s["fp32_val_macro_auroc"] == bundle.manifest["metrics"]["fp32"]["macro_auroc"]
    assert set(s["bundle_mb"]) == set(bundle.files) and s["bundle"] == str(tiny_bundle)


def test_unlabeled_data_is_refused_before_pretraining_naming_the_folder(tmp_path, ptbxl100):
    from click.testing import CliRunner

    from bell_edge.cli import main

    data = tmp_path / "unlabeled"
    data.mkdir()
    for part in ("hea", "dat"):
        (data / f"00024_lr.{part}").symlink_to(ptbxl100 / f"records100/00000/00024_lr.{part}")
    out = tmp_path / "demo_out"
    result = CliRunner().invoke(main, ["demo", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert (
        result.stderr.strip().splitlines()[-1] == f"error: {data}: unlabeled; the demo "
        "fine-tunes and scores, so it needs labels"
    )
    assert not out.exists()  # no marker-only folder, no pretraining stage left behind
