"""The bench worker speaks JSON lines: it serves a real bundle and never unpickles its input."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from bell_edge.bench.backends import decode_array, encode_array, read_json, send_json
from bell_edge.bench.latency import bench_inputs
from bell_edge.runtime.bundle import read_bundle


def _worker() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-m", "bell_edge.bench.backends"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def test_arrays_round_trip_exactly():
    a = np.random.default_rng(0).standard_normal((3, 12, 7)).astype(np.float32)
    assert np.array_equal(decode_array(encode_array(a)), a)


def test_worker_serves_json(tiny_bundle, ptbxl_cache):
    x, m, _ = bench_inputs(read_bundle(tiny_bundle), ptbxl_cache.root, 8)
    proc = _worker()
    try:
        send_json(proc.stdin, {"bundle": str(tiny_bundle), "backend": "ort-fp32", "threads": 1,
                               "windows": encode_array(x), "masks": encode_array(m)})  # fmt: skip
        ready = read_json(proc.stdout)
        logits = np.asarray(ready["ready"])
        assert logits.shape == (8, len(read_bundle(tiny_bundle).classes))
        send_json(proc.stdin, {"batch": 4, "warmup": 1, "runs": 3})
        times = read_json(proc.stdout)["times"]
        assert len(times) == 3 and all(t > 0 for t in times)
        send_json(proc.stdin, {"stop": True})
        assert read_json(proc.stdout)["memory"]["peak_rss_mb"] > 0
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == 0


class _Touch:
    """A pickle that creates a file when loaded: what an unpickling worker would run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_worker_never_unpickles(tmp_path):
    marker = tmp_path / "ran"
    proc = _worker()
    _, err = proc.communicate(pickle.dumps(_Touch(marker)) + b"\n", timeout=60)
    assert not marker.exists()
    assert proc.returncode != 0
