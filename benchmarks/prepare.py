"""Records/s of `bell-edge data prepare` against a naive single-process loop.

The naive loop is what research code does: `wfdb.rdrecord` plus `scipy.signal.filtfilt`, one
record at a time. `prepare` reads, resamples, band-passes (SOS, zero-phase), z-scores and writes
a memory-mapped cache, in a process pool. Usage: python benchmarks/prepare.py [DATA] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.signal as sps
import wfdb

from bell_edge.config import PreprocessConfig
from bell_edge.data.cache import prepare
from bell_edge.data.datasets import open_dataset

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "data" / "ptbxl100"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "wfdb": wfdb.__version__,
    }


def naive(paths: list[Path], fs: int) -> float:
    b, a = sps.butter(4, [0.5, 40], btype="bandpass", fs=fs)
    start = time.perf_counter()
    for path in paths:
        rec = wfdb.rdrecord(str(path))
        sps.filtfilt(b, a, rec.p_signal, axis=0)
    return time.perf_counter() - start


def ours(data: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        prepare(data, Path(tmp) / "cache", PreprocessConfig(), workers=workers, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    dataset = open_dataset(args.data)
    paths = [r.path for r in dataset.records]
    fs = int(wfdb.rdheader(str(paths[0])).fs)
    n = len(paths)
    naive_s = min(naive(paths, fs) for _ in range(args.repeats))
    single_s = min(ours(args.data, 1) for _ in range(args.repeats))
    pool_s = min(ours(args.data, os.cpu_count() or 1) for _ in range(args.repeats))
    result = {
        "benchmark": "prepare",
        "data": str(args.data.name),
        "records": n,
        "repeats": args.repeats,
        "machine": machine(),
        "naive_records_per_s": n / naive_s,
        "prepare_1_process_records_per_s": n / single_s,
        "prepare_pool_records_per_s": n / pool_s,
        "speedup_vs_naive": naive_s / pool_s,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prepare.json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    md = [
        "# `data prepare` throughput",
        "",
        f"Command: `python benchmarks/prepare.py` ({n} records of `{args.data.name}`, "
        f"best of {args.repeats}).",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}, "
        f"scipy {m['scipy']}, wfdb {m['wfdb']}.",
        "",
        "| pipeline | records/s | vs naive |",
        "|---|---|---|",
        f"| naive loop: `wfdb.rdrecord` + `filtfilt` | {n / naive_s:.0f} | 1.00x |",
        f"| `prepare`, 1 process (full preprocessing + cache) | {n / single_s:.0f} | "
        f"{naive_s / single_s:.2f}x |",
        f"| `prepare`, {m['cores']} processes | {n / pool_s:.0f} | {naive_s / pool_s:.2f}x |",
        "",
    ]
    (args.out / "prepare.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
