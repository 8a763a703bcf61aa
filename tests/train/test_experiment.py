"""The label-efficiency experiment end to end, on a tiny model and budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bell_edge.config import FinetuneConfig, PretrainConfig, load_toml, replace
from bell_edge.train import experiment


@pytest.fixture
def tiny_budget(monkeypatch):
    tiny = experiment.Budget(pretrain_epochs=1, finetune_epochs={0.01: 2, 0.1: 1}, linear_epochs=3)
    monkeypatch.setitem(experiment.BUDGETS, "small", tiny)


def _mtimes(out):
    return {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/model.pt")}


def test_label_efficiency_report(tmp_path, tiny_config, ptbxl_cache, tiny_budget):
    pre = replace(load_toml(PretrainConfig, tiny_config), data_fraction=0.25)  # a quarter: faster
    ft = FinetuneConfig(model=pre.model)
    out = tmp_path / "exp"

    def run(ft_cfg, modes=("linear", "full")):
        return experiment.label_efficiency(ptbxl_cache.root, out, (0.01, 0.1), 2, "small", pre,
                                           ft_cfg, device="cpu", progress=False,
                                           modes=modes)  # fmt: skip

    report = run(ft)
    assert len(report["results"]) == 2 * 2 * 3 * 2  # fractions x seeds x inits x modes
    assert (out / "report.md").is_file() and (out / "label_efficiency.png").stat().st_size > 0
    # Every init of a (fraction, seed) trained on the very same records.
    for fraction in (0.01, 0.1):
        for seed in (0, 1):
            ids = {
                tuple(json.loads((run / "subset.json").read_text())["record_ids"])
                for run in (out / "runs").glob(f"*-f{fraction:g}-s{seed}")
            }
            assert len(ids) == 1
    # Paired gains for both pretrained inits, both modes, both fractions, with a CI around them.
    gains = {(g["init"], g["mode"], g["fraction"]): g for g in report["gains"]}
    assert len(gains) == 2 * 2 * 2
    for g in gains.values():
        lo, hi = g["ci95_points"]
        assert lo <= g["gain_points"] <= hi and g["seeds"] == 2
    # The gain is the seed mean of the paired differences, computed from the runs' own scores.
    table = {(r["init"], r["mode"], r["fraction"], r["seed"]): r["macro_auroc"]
             for r in report["results"]}  # fmt: skip
    want = np.mean(
        [table["bell", "full", 0.1, s] - table["scratch", "full", 0.1, s] for s in (0, 1)]
    )
    assert gains["bell", "full", 0.1]["gain_points"] == pytest.approx(100 * want, abs=1e-6)
    # BELL against BYOL, paired the same way.
    between = {(g["init"], g["baseline"], g["mode"], g["fraction"]): g
               for g in report["between_pretrained"]}  # fmt: skip
    assert set(between) == {("bell", "byol", m, f) for m in ("linear", "full") for f in (0.01, 0.1)}
    want = np.mean([table["bell", "full", 0.1, s] - table["byol", "full", 0.1, s] for s in (0, 1)])
    got = between["bell", "byol", "full", 0.1]["gain_points"]
    assert got == pytest.approx(100 * want, abs=1e-6)

    # A second call trains nothing: no model file is rewritten.
    before = _mtimes(out)
    again = run(ft)
    assert _mtimes(out) == before
    assert again["results"] == report["results"]
    assert all("reused" in line for line in again["stages"])
    # A changed fine-tuning config is redone, and the log says why.
    changed = run(replace(ft, lr=1e-3), modes=("full",))
    redone = {p: t for p, t in before.items() if "-full-" in p.parent.name}
    assert len(redone) == 12 and all(_mtimes(out)[p] != t for p, t in redone.items())
    assert any("config or inputs changed" in line for line in changed["stages"])


def test_kfold_holds_out_each_fold(tmp_path, tiny_config, tiny_budget):
    from bell_edge.data.datasets import record_folds

    release = experiment.Path(__file__).resolve().parents[2].parent / "shared" / "data"
    release = release / "ptbxl100-release"
    if not release.exists():
        pytest.skip(f"{release} is not beside the checkout")
    pre = load_toml(PretrainConfig, tiny_config)
    ft = FinetuneConfig(model=pre.model)
    out = tmp_path / "kfold"
    encoder = tmp_path / "enc"
    from bell_edge.train.pretrain import pretrain

    pretrain(release, encoder, pre, progress=False, max_steps=2)
    report = experiment.label_efficiency(
        release, out, (0.1,), 1, "small", pre, ft, device="cpu", progress=False,
        inits={"bell": encoder}, modes=("full",), folds=(8, 9),
    )  # fmt: skip
    folds = record_folds(release)
    for r in report["results"]:
        run = out / r["run"]
        with np.load(run / "val_scores.npz") as z:
            assert {folds[i] for i in z["record_ids"]} == {r["fold"]}
        trained = json.loads((run / "subset.json").read_text())["record_ids"]
        assert r["fold"] not in {folds[i] for i in trained}
    (gain,) = report["gains"]
    assert gain["folds"] == 2 and gain["init"] == "bell"
    with pytest.raises(experiment.InputError, match="has no strat_fold 11 \\(it has 1, 2, "):
        experiment.label_efficiency(release, tmp_path / "k11", (0.1,), 1, "small", pre, ft,
                                    inits={"bell": encoder}, folds=(9, 11),
                                    progress=False)  # fmt: skip


def test_inits_take_shipped_names_and_refuse_unknown_ones(tmp_path, ptbxl_cache):
    from bell_edge.errors import InputError

    with pytest.raises(InputError, match="shipped: bell-corpus2k-v1"):
        experiment.label_efficiency(ptbxl_cache.root, tmp_path / "exp", (0.1,), 1, "small",
                                    inits={"bell": "no-such-encoder"}, progress=False)  # fmt: skip


def test_a_recipe_changes_only_its_own_inits_fine_tuning(tmp_path, ptbxl_cache, tiny_budget):
    from bell_edge.errors import InputError

    inits = {"bell": "bell-corpus2k-v1", "bell_lpft": "bell-corpus2k-v1"}
    out = tmp_path / "exp"
    with pytest.raises(InputError, match="--recipe nobody: no such init"):
        experiment.label_efficiency(ptbxl_cache.root, out, (0.1,), 1, "small", inits=inits,
                                    recipes={"nobody": FinetuneConfig()},
                                    progress=False)  # fmt: skip
    report = experiment.label_efficiency(
        ptbxl_cache.root, out, (0.1,), 1, "small", device="cpu", progress=False, inits=inits,
        modes=("full",), recipes={"bell_lpft": FinetuneConfig(probe_epochs=1)},
    )  # fmt: skip
    phases = {
        name: {json.loads(line)["phase"] for line in (out / "runs" / f"{name}-full-f0.1-s0"
                                                       / "metrics.jsonl").read_text().splitlines()}
        for name in ("bell", "bell_lpft", "scratch")
    }  # fmt: skip
    assert phases == {"bell": {"full"}, "bell_lpft": {"linear", "full"}, "scratch": {"full"}}
    assert report["recipes"]["bell_lpft"]["probe_epochs"] == 1
    assert "Recipe of bell_lpft: probe_epochs = 1." in (out / "report.md").read_text()


def test_data_curve_pretrains_each_share_and_reuses_a_ready_one(
    tmp_path, tiny_config, ptbxl_cache, tiny_budget
):
    from bell_edge.train.pretrain import pretrain

    pre = load_toml(PretrainConfig, tiny_config)
    ft = FinetuneConfig(model=pre.model)
    ready = tmp_path / "ready"
    pretrain(ptbxl_cache.root, ready, replace(pre, epochs=1, data_fraction=0.25), progress=False)
    report = experiment.data_curve(ptbxl_cache.root, tmp_path / "curve", [ptbxl_cache.root],
                                   (0.1, 0.25), 0.1, 1, "small", pre, ft, device="cpu",
                                   progress=False, ready={0.25: ready})  # fmt: skip
    windows = {g["init"]: g["corpus_windows"] for g in report["gains"]}
    assert windows["bell-corpus0.1"] < windows["bell-corpus0.25"]
    assert (tmp_path / "curve" / "pretrain" / "bell-corpus0.1" / "encoder.pt").is_file()
    assert not (tmp_path / "curve" / "pretrain" / "bell-corpus0.25").exists()
    assert (tmp_path / "curve" / "data_curve.png").stat().st_size > 0


def test_bad_inits_are_refused_before_any_work(tmp_path, ptbxl_cache):
    from click.testing import CliRunner

    from bell_edge.cli import main
    from bell_edge.errors import InputError

    empty = tmp_path / "not-a-run"
    empty.mkdir()
    with pytest.raises(InputError, match="no encoder.pt or checkpoint.pt"):
        experiment.label_efficiency(ptbxl_cache.root, tmp_path / "exp", (0.1,), 1, "small",
                                    inits={"bell": empty}, progress=False)  # fmt: skip
    with pytest.raises(InputError, match="no encoder.pt or checkpoint.pt"):
        experiment.data_curve(ptbxl_cache.root, tmp_path / "curve", [ptbxl_cache.root],
                              ready={1.0: empty}, progress=False)  # fmt: skip
    with pytest.raises(InputError, match="--ready 0.3: not one of the corpus fractions"):
        experiment.data_curve(ptbxl_cache.root, tmp_path / "curve", [ptbxl_cache.root],
                              ready={0.3: "bell-corpus2k-v1"}, progress=False)  # fmt: skip
    result = CliRunner().invoke(main, ["experiment", "data-curve", "--data", str(ptbxl_cache.root),
                                       "--out", str(tmp_path / "c"), "--pretrain-data",
                                       str(ptbxl_cache.root), "--ready", "abc=RUN"])  # fmt: skip
    assert result.exit_code == 2 and "SHARE a number" in result.stderr
    assert not (tmp_path / "curve").exists() and not (tmp_path / "c").exists()


def test_bad_fractions_tasks_and_folds_are_refused_before_pretraining(
    tmp_path, ptbxl_cache, monkeypatch
):
    from bell_edge.errors import InputError

    def no_pretraining(*args, **kwargs):
        raise AssertionError("pretrained before checking the inputs")

    monkeypatch.setattr(experiment, "pretrain_stage", no_pretraining)
    cases = {
        "--fractions: 1.5 is not a label fraction": dict(fractions=(0.1, 1.5)),
        "not rhythm": dict(fractions=(0.1,), tasks="rhythm"),  # a cache of other tasks
        "--corpus-fractions: 2 is not a share": None,
    }
    for message, kwargs in cases.items():
        with pytest.raises(InputError, match=message):
            if kwargs is None:
                experiment.data_curve(ptbxl_cache.root, tmp_path / "c", [ptbxl_cache.root],
                                      corpus_fractions=(0.5, 2.0), progress=False)  # fmt: skip
            else:
                experiment.label_efficiency(ptbxl_cache.root, tmp_path / "e", seeds=1,
                                            progress=False, **kwargs)  # fmt: skip
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()


def test_cli_budget_fine_tunes_as_the_finetune_command_does(tmp_path, tiny_config, ptbxl_cache):
    cli = experiment.BUDGETS["cli"]
    assert set(cli.finetune_epochs.values()) == {FinetuneConfig.epochs}
    assert cli.patience == FinetuneConfig.patience
    plan = replace(cli, finetune_epochs={0.1: 2}, patience=1)
    ft = FinetuneConfig(model=load_toml(PretrainConfig, tiny_config).model, device="cpu")
    out = tmp_path / "exp"
    experiment.run_grid(ptbxl_cache.root, out, {"scratch": None}, (0.1,), 1, ("full",), ft, plan,
                        None, [], False)  # fmt: skip
    config = (out / "runs" / "scratch-full-f0.1-s0" / "config.toml").read_text()
    assert "epochs = 2\n" in config and "patience = 1\n" in config
