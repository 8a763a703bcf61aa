"""benchmarks/paired_runs.py: pairs two experiments' runs only when their anchor runs agree."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "paired_runs.py"


def _results(path: Path, rows: list[tuple[str, int, float]]) -> Path:
    runs = [
        {"init": init, "mode": "full", "fraction": 0.1, "seed": seed, "fold": 1, "macro_auroc": auc}
        for init, seed, auc in rows
    ]
    path.write_text(json.dumps({"results": runs}))
    return path


def _run(a: Path, b: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), f"{a}:new", f"{b}:old", "--anchor", "scratch"]
    return subprocess.run(args, capture_output=True, text=True)


def test_pairs_runs_on_the_same_seed_and_fold(tmp_path):
    a = _results(tmp_path / "a.json", [("scratch", 0, 0.80), ("scratch", 1, 0.82),
                                       ("new", 0, 0.85), ("new", 1, 0.84)])  # fmt: skip
    b = _results(tmp_path / "b.json", [("scratch", 0, 0.80), ("scratch", 1, 0.82),
                                       ("old", 0, 0.83), ("old", 1, 0.85)])  # fmt: skip
    done = _run(a, b)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| 0.1"))
    # differences +2 and -1 points: mean +0.50, one pair of two won
    assert "| +0.50 |" in row and "| 1/2 |" in row


def test_refuses_experiments_whose_anchor_runs_differ(tmp_path):
    a = _results(tmp_path / "a.json", [("scratch", 0, 0.80), ("new", 0, 0.85)])
    b = _results(tmp_path / "b.json", [("scratch", 0, 0.81), ("old", 0, 0.83)])
    done = _run(a, b)
    assert done.returncode == 1
    assert "scratch runs differ (1 of 1 shared)" in done.stderr
