"""`bell-edge bench` and `bell-edge profile` from the command line: JSON, one-line errors."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from bell_edge.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_bench_json(tiny_bundle, ptbxl_cache):
    result = run("bench", tiny_bundle, "--batch", "2", "--threads", "1", "--runs", "3",
                 "--warmup", "1", "--backends", "ort-fp32,ort-int8", "--data", ptbxl_cache.root,
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["backend"] for r in report["results"]} == {"ort-fp32", "ort-int8"}
    assert all(r["batch"] == 2 and r["runs"] == 3 for r in report["results"])


def test_bench_help_names_every_backend():
    from bell_edge.bench.backends import BACKENDS

    result = run("bench", "--help")
    assert result.exit_code == 0
    text = "".join(result.output.split())  # click wraps lines at hyphens
    assert all(name in text for name in BACKENDS), text


def test_missing_bundle_is_one_line_exit_2(tmp_path):
    for command in ("bench", "profile"):
        result = run(command, tmp_path / "nope")
        assert result.exit_code == 2
        assert result.output.strip() == f"error: {tmp_path / 'nope'}: not a bundle folder"


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with (copy / "model.int8.onnx").open("ab") as f:
        f.write(b"\0")
    for command in ("bench", "profile"):
        result = run(command, copy)
        assert result.exit_code == 2
        assert len(result.output.strip().splitlines()) == 1
        assert "model.int8.onnx: sha256 does not match manifest.json" in result.output


def test_bad_option_values(tiny_bundle):
    result = run("bench", tiny_bundle, "--batch", "1,x")
    assert result.exit_code == 2 and "--batch 1,x: expected integers" in result.output
    result = run("bench", tiny_bundle, "--backends", "tpu")
    assert result.exit_code == 2 and "unknown backend 'tpu'" in result.output
