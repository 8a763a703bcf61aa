"""Structured pruning: widths, the protected head, rebuild from config + state dict, the CLI."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.compress.prune import prune_classifier, prune_inplace, rebuild, target_widths
from bell_edge.config import ModelConfig, from_dict, to_dict
from bell_edge.export.onnx import export_fp32
from bell_edge.models.artifact import load_classifier
from bell_edge.train.evaluate import evaluate_run


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def val_windows(ptbxl_cache):
    rows = ptbxl_cache.rows("val")[:16]
    return ptbxl_cache.windows[rows], ptbxl_cache.lead_masks[rows].astype(np.float32)


def test_target_widths_round_to_8_and_shrink_with_ratio():
    widths = (16, 16, 16, 32, 32, 64, 64)
    assert target_widths(widths, 0.0) == widths
    assert target_widths(widths, 0.5) == (8, 8, 8, 16, 16, 32, 32)
    last = widths
    for ratio in (0.3, 0.5, 0.7, 0.9):
        got = target_widths(widths, ratio)
        assert all(w % 8 == 0 and 8 <= w <= p for w, p in zip(got, last, strict=True))
        last = got


def test_pruned_widths_are_multiples_of_8_and_head_is_protected(tiny_classifier):
    clf = load_classifier(tiny_classifier)
    original = clf.model.encoder.conv_widths()
    pruned = prune_classifier(clf, 0.5)
    widths = pruned.model.encoder.conv_widths()
    assert clf.model.encoder.conv_widths() == original  # the source model is untouched
    assert widths == pruned.model_config.channels
    assert all(w % 8 == 0 for w in widths) and widths != original
    assert all(b.widths() == widths for b in pruned.model.encoder.branches)
    # The head keeps its classes and bias; its columns are an ordered subset of the original's.
    old, new = clf.model.head, pruned.model.head
    assert new.out_features == old.out_features == len(clf.classes)
    assert torch.equal(new.bias, old.bias)
    assert new.in_features == clf.model_config.n_leads * widths[-1] < old.in_features
    cols = [int(torch.where((old.weight == c[:, None]).all(0))[0][0]) for c in new.weight.T]
    assert cols == sorted(cols) and len(set(cols)) == len(cols)


def test_rebuilt_from_config_and_state_dict_matches_pruned_module(
    tiny_classifier, val_windows, tmp_path
):
    clf = load_classifier(tiny_classifier)
    module = copy.deepcopy(clf.model)
    widths = prune_inplace(module, 0.5, clf.preprocess.window_samples)
    cfg = ModelConfig(**{**to_dict(clf.model_config), "channels": widths})
    torch.save({"config": to_dict(cfg), "model": module.state_dict()}, tmp_path / "p.pt")
    saved = torch.load(tmp_path / "p.pt", weights_only=True)
    model = rebuild(from_dict(ModelConfig, saved["config"]), saved["model"])
    x = torch.from_numpy(np.ascontiguousarray(val_windows[0]))
    with torch.no_grad():
        expected, got = module.eval()(x), model(x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, clf.model(x), atol=1e-3)  # pruning did change the model


def test_prune_cli_writes_a_finetuned_run_that_evaluates_and_exports(
    tiny_classifier, ptbxl_cache, val_windows, tmp_path
):
    out = tmp_path / "pruned"
    args = ("prune", tiny_classifier, "--ratio", 0.5, "--data", ptbxl_cache.root, "--out", out)
    result = run(*args, "--epochs", 1, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["macs"] < report["before"]["macs"]
    assert json.loads((out / "prune.json").read_text()) == report

    clf = load_classifier(out)
    assert clf.model_config.channels == tuple(report["after"]["widths"])
    val = evaluate_run(out, ptbxl_cache.root, "val", bootstrap=0)
    assert val["macro_auroc"] == pytest.approx(report["after"]["recovered_val_macro_auroc"])
    parity = export_fp32(clf.model, tmp_path / "m.onnx", *val_windows)
    assert parity["max_abs_diff"] < 1e-4

    again = run(*args, "--epochs", 1)
    assert again.exit_code == 2 and "use --force" in again.stderr


def test_prune_cli_refuses_bad_input(tiny_classifier, ptbxl_cache, tmp_path):
    def refused(ckpt, ratio=0.5):
        args = ("prune", ckpt, "--ratio", ratio, "--data", ptbxl_cache.root, "--epochs", 1)
        result = run(*args, "--out", tmp_path / "out")
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        return result.stderr

    for ratio in (1.0, -0.1):
        assert "'--ratio'" in refused(tiny_classifier, ratio)  # click's range check, one line
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert "junk.pt: not a readable bell-edge checkpoint" in refused(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "bell-edge-encoder", "encoder": {}}, other)
    assert "other.pt: not a fine-tuned bell-edge model" in refused(other)
    alone = tmp_path / "alone" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(tiny_classifier / "model.pt", alone)
    assert "no subset.json beside it" in refused(alone)
    assert not (tmp_path / "out").exists()
