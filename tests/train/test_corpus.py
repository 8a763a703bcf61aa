"""The pretraining corpus: several real folders, no val record, nested fractions, bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.config import PreprocessConfig, PretrainConfig, load_toml, replace
from bell_edge.train.corpus import load_corpus
from bell_edge.train.pretrain import momentum_start, pretrain


def _ids(corpus) -> set[tuple[str, str]]:
    return {
        (str(s.cache.meta["source"]), rid)
        for s in corpus.sources
        for rid in s.cache.record_ids[s.rows]
    }


def test_corpus_takes_train_of_split_folders_and_all_of_others(ptbxl100, cpsc2021):
    corpus = load_corpus([ptbxl100, cpsc2021], PreprocessConfig(), progress=False)
    ptbxl, holter = corpus.sources
    assert set(ptbxl.cache.splits[ptbxl.rows]) == {"train"}  # val never enters pretraining
    assert len(ptbxl.rows) == 1442
    assert len(holter.rows) == len(holter.cache) > 18  # every window of every long record
    assert not holter.cache.lead_masks[holter.rows].all()  # the 2-lead Holter keeps its mask
    window, mask = corpus[len(corpus) - 1]
    assert window.shape == (12, 1000) and mask.sum() == 2
    manifest = corpus.manifest()
    assert [m["windows"] for m in manifest] == [1442, len(holter.rows)]
    assert all(len(m["index_sha256"]) == 64 and m["labels_used"] is False for m in manifest)


def test_fractions_are_nested_and_seeded(ptbxl100, cpsc2021):
    def ids(fraction, seed=0):
        folders = [ptbxl100, cpsc2021]
        return _ids(load_corpus(folders, PreprocessConfig(), fraction=fraction, seed=seed,
                                progress=False))  # fmt: skip

    quarter, half, full = ids(0.25), ids(0.5), ids(1.0)
    assert quarter < half < full
    assert abs(len(half) - len(full) / 2) <= 1
    assert ids(0.25) == quarter and ids(0.25, seed=1) != quarter


def test_unreadable_folder_is_one_line(tmp_path):
    (tmp_path / "a.hea").write_text("not a header\n")
    result = CliRunner().invoke(
        main, ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    assert str(tmp_path) in result.stderr and "1 skipped" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_momentum_start_makes_the_target_travel():
    cfg = PretrainConfig(momentum_base=0.996, target_travel=8.0)
    assert momentum_start(cfg, 400) == pytest.approx(1 - 16 / 400)  # short run: lowered
    assert momentum_start(cfg, 100) == 0.9  # never below the floor
    assert momentum_start(cfg, 100_000) == 0.996  # long run: the base as given


def test_short_run_anneals_and_saves_a_modules_encoder(tmp_path, tiny_config, ptbxl100, cpsc2021):
    cfg = replace(load_toml(PretrainConfig, tiny_config), epochs=50, checkpoint_every=1000)
    run = tmp_path / "run"
    pretrain([ptbxl100, cpsc2021], run, cfg, progress=False, max_steps=8)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the schedule ends with the run
    assert rows[-1]["momentum"] == pytest.approx(1.0)
    shares = [r["target_init_share"] for r in rows]
    assert all(b <= a for a, b in zip(shares, shares[1:], strict=False)) and shares[-1] < 0.9
    assert rows[-1]["target_drift"] > rows[0]["target_drift"] > 0
    corpus = json.loads((run / "corpus.json").read_text())
    assert [c["path"] for c in corpus] == [str(ptbxl100), str(cpsc2021)]

    import torch

    encoder = torch.load(run / "encoder.pt", weights_only=True)
    assert encoder["model_config"]["layout"] == "modules"
    assert encoder["batchnorm"] == "clean windows"
    assert any(k.startswith("branches.11.") for k in encoder["encoder"])
    # Re-estimated statistics differ from the EMA over augmented views in the checkpoint.
    online = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    ema_var = online["online.encoder.grouped.stem.1.running_var"].reshape(12, -1)[0]
    assert not np.allclose(encoder["encoder"]["branches.0.stem.1.running_var"], ema_var)


def test_resume_refuses_another_corpus(tmp_path, tiny_config, ptbxl100, cpsc2021):
    run = tmp_path / "run"
    base = ["pretrain", "--out", str(run), "--config", str(tiny_config), "--max-steps", "2"]
    first = CliRunner().invoke(main, [*base, "--data", str(ptbxl100)])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, [*base, "--data", str(ptbxl100), "--data", str(cpsc2021),
                                      "--resume"])  # fmt: skip
    assert again.exit_code == 2 and "differ from the run's start" in again.stderr
