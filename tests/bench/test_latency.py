"""`bench` on a real exported bundle: every field, ratios in one run, honest skips."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bell_edge.bench.backends import BACKENDS, skip_reason
from bell_edge.bench.latency import bench
from bell_edge.runtime.bundle import read_bundle

ROW_FIELDS = {
    "bundle", "backend", "label", "precision", "device", "file", "file_mb", "threads", "batch",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_wps", "runs", "peak_rss_mb",
    "rss_over_base_mb", "max_abs_logit_diff_vs_ort_fp32", "achieved_gops", "peak_gops",
    "percent_of_peak", "speedup_vs", "best_run_speedup_vs", "min_ms",
}  # fmt: skip
CPU = ("torch-fp32", "ort-fp32", "ort-int8", "ort-int8-trt")


@pytest.fixture(scope="module")
def report(tiny_bundle, ptbxl_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench([tiny_bundle], batches=(1, 4), threads=(1,), warmup=1, runs=6,
                   data=ptbxl_cache.root, out=out, progress=False)  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    return result


def test_every_cpu_backend_has_every_field(report):
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {(b, n) for b in CPU for n in (1, 4)}
    for row in rows.values():
        assert set(row) >= ROW_FIELDS, ROW_FIELDS - set(row)
        assert row["runs"] == 6 and row["threads"] == 1
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_wps"] == pytest.approx(row["batch"] * 1e3 / row["mean_ms"])
        assert row["peak_rss_mb"] > row["rss_over_base_mb"] > 0
        assert row["file_mb"] > 0 and 0 < row["percent_of_peak"] < 100
    assert {"machine", "settings", "roofline", "bundles", "results", "skipped"} <= set(report)
    assert report["machine"]["cores"] >= 1 and report["machine"]["versions"]["onnxruntime"]
    assert report["bundles"][0]["macs_per_window"] > 0 and report["bundles"][0]["metrics"]


def test_ratios_are_from_the_same_run(report):
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    for (_, batch), row in rows.items():
        fp32, torch = rows[("ort-fp32", batch)], rows[("torch-fp32", batch)]
        assert row["speedup_vs"]["ort-fp32"] == pytest.approx(fp32["p50_ms"] / row["p50_ms"])
        assert row["speedup_vs"]["torch-fp32"] == pytest.approx(torch["p50_ms"] / row["p50_ms"])
    assert rows[("ort-fp32", 1)]["speedup_vs"]["ort-fp32"] == 1.0


def test_backends_compute_the_same_model(report):
    diff = {r["backend"]: r["max_abs_logit_diff_vs_ort_fp32"] for r in report["results"]}
    assert diff["ort-fp32"] == 0.0
    assert diff["torch-fp32"] < 1e-4  # the source checkpoint is the bundle's model
    assert 0 < diff["ort-int8"] < 1.0


def test_gpu_backends_skip_without_a_gpu(report):
    if report["machine"]["gpu"]:
        pytest.skip("this machine has a GPU")
    skipped = {s["backend"]: s["reason"] for s in report["skipped"]}
    gpu = {n for n, b in BACKENDS.items() if b.device == "cuda"}
    assert gpu <= set(skipped)
    assert all(skipped[name] == "no CUDA GPU on this machine" for name in gpu)


def test_a_backend_without_its_model_skips_with_the_reason(report):
    """The tiny bundle has no LiteRT model: skipped, saying so, not failed."""
    skipped = {s["backend"]: s["reason"] for s in report["skipped"]}
    assert "no int8 model that backend litert opens" in skipped["litert-int8"]


def test_a_lost_checkpoint_skips_torch_with_the_reason(tiny_bundle, tmp_path):
    bundle = read_bundle(tiny_bundle)
    manifest = {**bundle.manifest, "source_checkpoint": str(tmp_path / "gone")}
    gone = dataclasses.replace(bundle, manifest=manifest)
    assert "source checkpoint is gone" in skip_reason(gone, "torch-fp32", None)
    assert skip_reason(gone, "ort-int8", None) is None


@pytest.mark.gpu
def test_gpu_backends_run(tiny_bundle, ptbxl_cache):
    report = bench([tiny_bundle], batches=(1, 8), threads=(1,), warmup=2, runs=5,
                   backends=["ort-fp32", "torch-cuda-bf16", "ort-cuda-fp32"],
                   data=ptbxl_cache.root, progress=False)  # fmt: skip
    done = {r["backend"] for r in report["results"]}
    assert "torch-cuda-bf16" in done, report["skipped"]
    bf16 = next(r for r in report["results"] if r["backend"] == "torch-cuda-bf16")
    assert bf16["max_abs_logit_diff_vs_ort_fp32"] < 0.5


def test_a_changed_checkpoint_is_refused_for_torch(tiny_bundle, tmp_path):
    bundle = read_bundle(tiny_bundle)
    other = tmp_path / "model.pt"
    other.write_bytes(b"another model")
    changed = dataclasses.replace(bundle, manifest={**bundle.manifest,
                                                    "source_checkpoint": str(other)})  # fmt: skip
    assert "sha256 does not match" in skip_reason(changed, "torch-fp32", None)
    assert skip_reason(bundle, "torch-fp32", None) is None


def test_a_worker_that_dies_mid_run_skips_all_its_cases_with_why(tiny_bundle):
    import numpy as np

    from bell_edge.bench.backends import encode_array
    from bell_edge.bench.latency import Worker, _measure, _start

    x, m = np.zeros((2, 12, 1000), np.float32), np.ones((2, 12), np.float32)
    request = {"bundle": str(tiny_bundle), "backend": "ort-fp32", "threads": 1,
               "windows": encode_array(x), "masks": encode_array(m)}  # fmt: skip
    worker, dead = Worker(0, "ort-fp32", 1, request, (1, 2)), set()
    try:
        assert _start([worker], []) == [worker]
        worker.proc.kill()  # as the kernel's OOM killer would
        _measure(worker, (1, 2), warmup=0, runs=1, dead=dead)
        assert dead == {worker}
        assert set(worker.errors) == {1, 2}
        assert all("worker exited with code -9" in e for e in worker.errors.values())
    finally:
        worker.close()  # its unsent bytes do not raise
