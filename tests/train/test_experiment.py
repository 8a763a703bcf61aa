"""The label-efficiency experiment end to end, on a tiny model and budget."""

from __future__ import annotations

import json

from bell_edge.config import FinetuneConfig, PretrainConfig, load_toml
from bell_edge.train import experiment


def test_label_efficiency_report(tmp_path, tiny_config, ptbxl_cache, monkeypatch):
    tiny = experiment.Budget(pretrain_epochs=1, finetune_epochs={0.01: 2, 0.1: 1}, linear_epochs=3)
    monkeypatch.setitem(experiment.BUDGETS, "small", tiny)
    pre = load_toml(PretrainConfig, tiny_config)
    ft = FinetuneConfig(model=pre.model)
    out = tmp_path / "exp"
    report = experiment.label_efficiency(
        ptbxl_cache.root, out, (0.01, 0.1), 2, "small", pre, ft, device="cpu", progress=False
    )
    assert len(report["results"]) == 2 * 2 * 3 * 2  # fractions x seeds x methods x modes
    assert (out / "report.md").is_file() and (out / "label_efficiency.png").stat().st_size > 0
    # Every method of a (fraction, seed) trained on the very same records.
    for fraction in (0.01, 0.1):
        for seed in (0, 1):
            ids = {
                tuple(json.loads((run / "subset.json").read_text())["record_ids"])
                for run in (out / "runs").glob(f"*-f{fraction:g}-s{seed}")
            }
            assert len(ids) == 1
    # A second call redoes nothing.
    again = experiment.label_efficiency(
        ptbxl_cache.root, out, (0.01, 0.1), 2, "small", pre, ft, device="cpu", progress=False
    )
    assert again["results"] == report["results"]
