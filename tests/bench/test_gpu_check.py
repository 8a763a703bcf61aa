"""benchmarks/gpu_check.sh without a GPU: its dry run checks every step's command and flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("pytest_gpu", "pretrain_1gpu", "pretrain_ddp", "finetune", "export", "export_fp32",
         "bench", "report")  # fmt: skip


def dry_run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--python", sys.executable, "--work",
         str(tmp_path / "work"), "--out", str(tmp_path / "results"), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_dry_run_checks_every_step(ptbxl100, tmp_path):
    result = dry_run("--data", str(ptbxl100), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in STEPS:
        assert f"ok   {name}\n" in result.stderr
    assert "FAIL" not in result.stderr
    assert not (tmp_path / "results" / "gpu_check.json").exists()  # a dry run writes no results


def test_dry_run_refuses_a_missing_data_folder(tmp_path):
    result = dry_run("--data", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"FAIL {tmp_path / 'nowhere'}: no such path" in result.stderr
    assert "bell-edge data download" in result.stderr
