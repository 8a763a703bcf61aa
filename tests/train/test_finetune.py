"""Fine-tuning: initialization, linear mode, thresholds, subsets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bell_edge.config import FinetuneConfig, PretrainConfig, load_toml, replace
from bell_edge.models.artifact import load_classifier
from bell_edge.models.heads import ECGClassifier
from bell_edge.train.finetune import finetune as run_finetune
from bell_edge.train.pretrain import load_encoder, pretrain


def _tiny_pretrain(tmp_path, tiny_config, cache):
    run = tmp_path / "pre"
    pretrain(cache.root, run, load_toml(PretrainConfig, tiny_config), progress=False, max_steps=3)
    return run


def _ft_config(tiny_config, **kw):
    model = load_toml(PretrainConfig, tiny_config).model
    return replace(FinetuneConfig(model=model, epochs=2, label_fraction=0.1), **kw)


def _encoder_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_init_loads_every_encoder_weight_and_linear_keeps_them(tmp_path, tiny_config, ptbxl_cache):
    pre = _tiny_pretrain(tmp_path, tiny_config, ptbxl_cache)
    _, _, encoder, _ = load_encoder(pre)
    run = tmp_path / "linear"
    run_finetune(ptbxl_cache.root, run, _ft_config(tiny_config, mode="linear"), init=pre,
                 progress=False)  # fmt: skip
    tuned = load_classifier(run)
    # Linear mode: the encoder (BatchNorm buffers included) is exactly the pretrained one.
    assert _encoder_equal(tuned.model.encoder.state_dict(), encoder)
    # Full mode from the same init moves the encoder.
    full = tmp_path / "full"
    run_finetune(ptbxl_cache.root, full, _ft_config(tiny_config), init=pre, progress=False)
    assert not _encoder_equal(load_classifier(full).model.encoder.state_dict(), encoder)


def test_freeze_bn_keeps_the_pretrained_statistics_and_trains_the_rest(
    tmp_path, tiny_config, ptbxl_cache
):
    pre = _tiny_pretrain(tmp_path, tiny_config, ptbxl_cache)
    _, _, encoder, _ = load_encoder(pre)
    stats = [k for k in encoder if k.endswith(("running_mean", "running_var"))]
    runs = {}
    for freeze in (True, False):
        run = tmp_path / f"freeze{freeze}"
        cfg = _ft_config(tiny_config, freeze_bn=freeze)
        run_finetune(ptbxl_cache.root, run, cfg, init=pre, progress=False)
        runs[freeze] = load_classifier(run).model.encoder.state_dict()
    assert stats and all(torch.equal(runs[True][k], encoder[k]) for k in stats)
    assert not all(torch.equal(runs[False][k], encoder[k]) for k in stats)
    convs = [k for k in encoder if encoder[k].ndim > 1]
    assert not all(torch.equal(runs[True][k], encoder[k]) for k in convs)


def test_scratch_loads_no_pretrained_weight(tmp_path, tiny_config, ptbxl_cache):
    pre = _tiny_pretrain(tmp_path, tiny_config, ptbxl_cache)
    _, _, encoder, _ = load_encoder(pre)
    run = tmp_path / "scratch"
    cfg = _ft_config(tiny_config, mode="linear")
    run_finetune(ptbxl_cache.root, run, cfg, progress=False)
    scratch = load_classifier(run).model.encoder.state_dict()
    torch.manual_seed(cfg.seed)
    fresh = ECGClassifier(cfg.model).encoder.state_dict()
    weights = [k for k in encoder if k.endswith("weight") and encoder[k].ndim > 1]
    assert weights and not any(torch.equal(scratch[k], encoder[k]) for k in weights)
    assert all(torch.equal(scratch[k], fresh[k]) for k in weights)  # a seeded random init


def test_thresholds_round_trip_and_subset_is_reused(tmp_path, tiny_config, ptbxl_cache):
    first = tmp_path / "a"
    summary = run_finetune(ptbxl_cache.root, first, _ft_config(tiny_config), progress=False)
    clf = load_classifier(first)
    assert clf.thresholds.shape == (5,) and np.all((clf.thresholds > 0) & (clf.thresholds < 1))
    saved = [summary["val"]["per_class"][c]["threshold"] for c in clf.classes]
    np.testing.assert_allclose(clf.thresholds, saved, rtol=1e-6)
    subset = json.loads((first / "subset.json").read_text())
    assert subset["n"] == summary["train_records"] == round(0.1 * 1442)

    second = tmp_path / "b"
    cfg = _ft_config(tiny_config, seed=5)  # another seed, same labeled records
    run_finetune(ptbxl_cache.root, second, cfg, subset=first / "subset.json", progress=False)
    again = json.loads((second / "subset.json").read_text())
    assert again["record_ids"] == subset["record_ids"]


def test_bad_settings_and_an_unfinished_run_are_one_line(tmp_path, ptbxl_cache):
    from click.testing import CliRunner

    from bell_edge.cli import main

    def finetune_cli(*extra):
        args = ["finetune", "--data", ptbxl_cache.root, "--out", tmp_path / "run", "--scratch",
                *extra]  # fmt: skip
        return CliRunner().invoke(main, [str(a) for a in args])

    for text, says in (("batch_size = -3\n", "batch_size = -3: must be at least 1"),
                       ("label_fraction = 5.0\n", "label_fraction = 5.0: must be in (0, 1]"),
                       ('mode = "half"\n', "mode = 'half': must be linear or full")):  # fmt: skip
        settings = tmp_path / "ft.toml"
        settings.write_text(text)
        result = finetune_cli("--config", settings)
        assert result.exit_code == 2, result.output
        assert f"{settings}: {says}" in result.stderr and len(result.stderr.splitlines()) == 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("")  # what an interrupted run leaves
    result = finetune_cli()
    assert result.exit_code == 2 and "a run that stopped before its end" in result.stderr


def _same_run(a, b) -> None:
    """Two finished runs agree bitwise: weights, per-epoch log and val figures."""
    sa, sb = load_classifier(a).model.state_dict(), load_classifier(b).model.state_dict()
    assert _encoder_equal(sa, sb)
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    summary_a, summary_b = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    assert (
        summary_a["val"] == summary_b["val"] and summary_a["best_epoch"] == summary_b["best_epoch"]
    )
    assert not (b / "checkpoint.pt").exists()  # gone once model.pt is written


def test_a_killed_or_interrupted_run_resumes_to_the_same_model(
    tmp_path, tiny_config, ptbxl_cache, monkeypatch
):
    import signal

    from bell_edge.train import finetune as finetune_module

    pre = _tiny_pretrain(tmp_path, tiny_config, ptbxl_cache)
    cfg = _ft_config(tiny_config, epochs=3, probe_epochs=2, patience=10)  # a probe, then full
    whole = tmp_path / "whole"
    run_finetune(ptbxl_cache.root, whole, cfg, init=pre, progress=False)

    # Killed after the 1st epoch of the probe, and after the 1st epoch of the full phase, with a
    # checkpoint at every epoch's end.
    monkeypatch.setattr(finetune_module, "SAVE_EVERY_S", 0.0)
    original = finetune_module._Journal.epoch_done
    for kill_after in (1, 3):
        epochs: list[str] = []

        def dying(journal, phase, row, state, epochs=epochs, kill_after=kill_after):
            original(journal, phase, row, state)
            epochs.append(phase)
            if len(epochs) == kill_after:
                raise SystemExit("killed")

        run = tmp_path / f"killed{kill_after}"
        monkeypatch.setattr(finetune_module._Journal, "epoch_done", dying)
        with pytest.raises(SystemExit):
            run_finetune(ptbxl_cache.root, run, cfg, init=pre, progress=False)
        assert (run / "checkpoint.pt").is_file() and not (run / "model.pt").exists()
        monkeypatch.setattr(finetune_module._Journal, "epoch_done", original)
        run_finetune(ptbxl_cache.root, run, cfg, init=pre, progress=False, resume=True)
        _same_run(whole, run)

    # Ctrl-C in the full phase's 2nd epoch: no checkpoint was due (60 s), one is saved at the
    # epoch's end and the run stops there.
    monkeypatch.setattr(finetune_module, "SAVE_EVERY_S", 60.0)
    train_epoch = finetune_module._FullFineTune.train_epoch

    def interrupted(trainer, epoch):
        if epoch == 2:
            signal.raise_signal(signal.SIGINT)
        return train_epoch(trainer, epoch)

    monkeypatch.setattr(finetune_module._FullFineTune, "train_epoch", interrupted)
    run = tmp_path / "ctrl-c"
    with pytest.raises(KeyboardInterrupt):
        run_finetune(ptbxl_cache.root, run, cfg, init=pre, progress=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["phase"] for line in lines] == ["linear", "linear", "full", "full"]
    monkeypatch.setattr(finetune_module._FullFineTune, "train_epoch", train_epoch)
    run_finetune(ptbxl_cache.root, run, cfg, init=pre, progress=False, resume=True)
    _same_run(whole, run)


def test_resume_refuses_another_recipe_a_finished_run_and_a_foreign_folder(
    tmp_path, tiny_config, ptbxl_cache, monkeypatch
):
    from click.testing import CliRunner

    from bell_edge.cli import main
    from bell_edge.train import finetune as finetune_module

    monkeypatch.setattr(finetune_module, "SAVE_EVERY_S", 0.0)
    original = finetune_module._Journal.epoch_done

    def dying(journal, phase, row, state):
        original(journal, phase, row, state)
        raise SystemExit("killed")

    run = tmp_path / "run"
    monkeypatch.setattr(finetune_module._Journal, "epoch_done", dying)
    with pytest.raises(SystemExit):
        run_finetune(ptbxl_cache.root, run, _ft_config(tiny_config), progress=False)
    monkeypatch.setattr(finetune_module._Journal, "epoch_done", original)

    def finetune_cli(out, *extra):
        args = ["finetune", "--data", ptbxl_cache.root, "--out", out, "--scratch",
                "--config", tiny_ft, "--resume", *extra]  # fmt: skip
        return CliRunner().invoke(main, [str(a) for a in args])

    tiny_ft = tmp_path / "ft.toml"
    tiny_ft.write_text("epochs = 2\nlabel_fraction = 0.1\n")
    model_cfg = load_toml(PretrainConfig, tiny_config).model
    assert model_cfg != FinetuneConfig().model  # the CLI run below has another recipe
    result = finetune_cli(run)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "--resume with model." in result.stderr and "but the run has" in result.stderr
    result = finetune_cli(run, "--seed", "3")
    assert result.exit_code == 2 and "--resume with" in result.stderr
    # Without --resume the folder says how to go on.
    plain = CliRunner().invoke(main, ["finetune", "--data", str(ptbxl_cache.root), "--out",
                                      str(run), "--scratch"])  # fmt: skip
    assert plain.exit_code == 2 and "use --resume to go on from its checkpoint" in plain.stderr
    assert (run / "checkpoint.pt").is_file()  # a refusal touches nothing

    run_finetune(ptbxl_cache.root, run, _ft_config(tiny_config), progress=False, resume=True)
    result = finetune_cli(run)
    assert result.exit_code == 2 and "already complete" in result.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = finetune_cli(foreign)
    assert result.exit_code == 2 and "no checkpoint.pt to resume" in result.stderr
    assert (foreign / "notes.txt").read_text() == "mine"
