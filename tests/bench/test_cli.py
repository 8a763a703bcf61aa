"""`bell-edge bench` and `bell-edge profile` from the command line: JSON, one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest
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


def test_bad_option_values(tiny_bundle, tmp_path):
    cases = {
        ("--batch", "1,x"): "error: --batch 1,x: expected positive integers like 1,8,32",
        ("--batch", "0"): "error: --batch 0: expected positive integers like 1,8,32",
        ("--threads", "1,-1"): "error: --threads 1,-1: expected positive integers like 1,8,32",
        ("--backends", "tpu"): "error: unknown backend 'tpu'",
        ("--out", tmp_path / "typo" / "bench.json"):
            f"error: {tmp_path / 'typo' / 'bench.json'}: folder {tmp_path / 'typo'} does not exist",
    }  # fmt: skip
    for args, message in cases.items():
        result = run("bench", tiny_bundle, *args)
        assert result.exit_code == 2 and result.output.startswith(message), result.output
    assert not (tmp_path / "typo").exists()  # not made on the way


def test_only_backends_that_cannot_run_here_is_an_error_not_an_empty_table(tiny_bundle):
    from bell_edge.bench.machine import describe

    if describe()["gpu"]:
        pytest.skip("this machine has a GPU, so tensorrt-int8 may run")
    result = run("bench", tiny_bundle, "--backends", "tensorrt-int8", "--runs", "1")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: nothing to measure: no backend asked for runs here "
                                     "(tensorrt-int8: no CUDA GPU on this machine)")  # fmt: skip
