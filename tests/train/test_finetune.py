"""Fine-tuning: initialization, linear mode, thresholds, subsets."""

from __future__ import annotations

import json

import numpy as np
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
