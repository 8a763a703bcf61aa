"""Shipped pretrained encoders: listing, hash verification before loading, unknown names."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.config import PretrainConfig, load_toml
from bell_edge.errors import InputError
from bell_edge.models import pretrained
from bell_edge.train.pretrain import pretrain


@pytest.fixture
def shipped(tmp_path, tiny_config, ptbxl_cache, monkeypatch):
    """A tiny finished run packed into a temporary weights folder."""
    run = tmp_path / "run"
    pretrain(ptbxl_cache.root, run, load_toml(PretrainConfig, tiny_config), progress=False,
             max_steps=2)  # fmt: skip
    root = tmp_path / "weights"
    pretrained.pack(run, "tiny-v1", {"note": "test"}, "# tiny\n", root=root)
    monkeypatch.setattr(pretrained, "WEIGHTS", root)
    monkeypatch.setattr(pretrained.available, "__defaults__", (root,))
    monkeypatch.setattr(pretrained.verified_path, "__defaults__", (root,))
    monkeypatch.setattr(pretrained.resolve_init, "__defaults__", (root,))
    return root / "tiny-v1"


def test_list_json_shows_the_manifest(shipped):
    result = CliRunner().invoke(main, ["pretrained", "list", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["name"] == "tiny-v1" and row["method"] == "bell" and row["labels_used"] is False
    state = torch.load(shipped / "encoder.pt", weights_only=True)
    assert row["params"] == sum(
        v.numel() for k, v in state["encoder"].items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )  # fmt: skip
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["recipe"]["method"] == "bell" and manifest["sources"][0]["index_sha256"]


def test_finetune_from_a_name_and_refuse_tampering(shipped, tmp_path, ptbxl_cache):
    args = ["finetune", "--data", str(ptbxl_cache.root), "--init", "tiny-v1", "--mode", "linear",
            "--label-fraction", "0.1", "--epochs", "1", "--out"]  # fmt: skip
    ok = CliRunner().invoke(main, [*args, str(tmp_path / "ft")])
    assert ok.exit_code == 0, ok.output
    # One flipped byte in the shipped file: refused before loading, exit 2, one line.
    data = bytearray((shipped / "encoder.pt").read_bytes())
    data[-10] ^= 0xFF
    (shipped / "encoder.pt").write_bytes(bytes(data))
    bad = CliRunner().invoke(main, [*args, str(tmp_path / "ft2")])
    assert bad.exit_code == 2 and "sha256 does not match" in bad.stderr
    assert "Traceback" not in bad.output + bad.stderr


def test_a_shipped_encoder_is_verified_however_it_is_named(shipped, tmp_path, monkeypatch):
    # A local folder with the shipped name does not stand in for it, and a path into the
    # weights folder is verified like the name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny-v1").mkdir()
    assert pretrained.resolve_init("tiny-v1") == shipped / "encoder.pt"
    other = tmp_path / "run"
    assert pretrained.resolve_init(other) == other
    data = bytearray((shipped / "encoder.pt").read_bytes())
    data[-10] ^= 0xFF
    (shipped / "encoder.pt").write_bytes(bytes(data))
    for init in ("tiny-v1", shipped, shipped / "encoder.pt"):
        with pytest.raises(InputError, match="sha256 does not match"):
            pretrained.resolve_init(init)


def test_unknown_name_lists_the_known(shipped, tmp_path, ptbxl_cache):
    result = CliRunner().invoke(main, ["finetune", "--data", str(ptbxl_cache.root), "--init",
                                       "nope", "--out", str(tmp_path / "ft")])  # fmt: skip
    assert result.exit_code == 2 and "shipped: tiny-v1" in result.stderr


def test_packing_refuses_an_unfinished_run(shipped, tmp_path):
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "total_steps": 99}))
    with pytest.raises(ValueError, match="unfinished"):
        pretrained.pack(run, "again", {}, "", root=tmp_path / "w2")
    shutil.rmtree(tmp_path / "w2", ignore_errors=True)


def test_every_shipped_encoder_verifies_and_loads_strictly():
    from bell_edge.models.heads import ECGClassifier
    from bell_edge.train.pretrain import load_encoder

    manifests = pretrained.available()
    assert manifests, "the package ships at least one pretrained encoder"
    for m in manifests:
        path = pretrained.verified_path(m["name"])
        assert path.stat().st_size == m["bytes"] <= pretrained.MAX_BYTES
        assert m["labels_used"] is False and m["steps"] == m["recipe"]["epochs"] * (
            sum(s["windows"] for s in m["sources"]) // m["recipe"]["batch_size"]
        )
        model_cfg, _, encoder, method = load_encoder(path)
        assert method == m["method"]
        ECGClassifier(model_cfg).encoder.load_state_dict(encoder, strict=True)


def test_versions_are_listed_in_numeric_order(tmp_path):
    """The demo starts from the last listed BELL encoder: v10 is newer than v9 and v2."""
    for name in ("enc-v10", "enc-v2", "enc-v9"):
        (tmp_path / name).mkdir()
        (tmp_path / name / pretrained.MANIFEST_FILE).write_text(json.dumps({"name": name}))
    assert [m["name"] for m in pretrained.available(tmp_path)] == ["enc-v2", "enc-v9", "enc-v10"]
