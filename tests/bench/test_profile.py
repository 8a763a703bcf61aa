"""`profile`: per-layer times that add up to the run, with MACs, and its output files."""

from __future__ import annotations

import json

import pytest

from bell_edge.bench.profile import TRACE_RUNS, aggregate, base_name, group_name, profile
from bell_edge.bench.roofline import total_macs
from bell_edge.errors import InputError


def test_aggregate_drops_warmup_runs():
    def node(name, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": "Conv"}}  # fmt: skip

    events = [
        {"name": "model_run", "ts": 0, "dur": 100}, node("a", 1, 90),
        {"name": "model_run", "ts": 200, "dur": 50}, node("a", 201, 20), node("b", 230, 10),
        {"name": "model_run", "ts": 300, "dur": 40}, node("a_token_3", 301, 30),
    ]  # fmt: skip
    nodes, runs, start = aggregate(events, warmup=1)
    assert runs == [50.0, 40.0] and start == 200
    assert nodes == {"a": {"op": "Conv", "us": 20.0}, "b": {"op": "Conv", "us": 10.0},
                     "a_token_3": {"op": "Conv", "us": 30.0}}  # fmt: skip
    with pytest.raises(InputError, match="none after 3 warm-up"):
        aggregate(events, warmup=3)


def test_names_of_fused_nodes():
    assert base_name("/branches.3/a/Conv_token_12") == "/branches.3/a/Conv"
    assert base_name("/x/Relu_output_0_DequantizeLinear/duplicated") == (
        "/x/Relu_output_0_DequantizeLinear"
    )
    assert group_name("/branches.11/stem/Conv_token_5") == "/branches.*/stem/Conv"


@pytest.mark.parametrize("backend", ["ort-int8", "torch"])
def test_profile_sums_to_the_run(backend, tiny_bundle, ptbxl_cache, tmp_path, capfd):
    out = tmp_path / "prof"
    result = profile(tiny_bundle, out, backend, batch=32, warmup=2, runs=5, top=5,
                     data=ptbxl_cache.root, progress=False)  # fmt: skip
    assert result["coverage"] == pytest.approx(result["layers_ms"] / result["total_ms"])
    # torch's python glue between modules is outside the layers. ORT's own per-run overhead is
    # too, and it grows on a loaded machine (0.895 with the 2 cores oversubscribed), so the
    # bound checks that the layers are all there, not how idle the machine is.
    if backend == "ort-int8":
        assert 0.75 <= result["coverage"] <= 1.0
    assert sum(o["ms"] for o in result["by_op"]) == pytest.approx(result["layers_ms"])
    assert len(result["top"]) == 5 and result["top"][0]["ms"] >= result["top"][-1]["ms"]
    # every Conv/Gemm gets its MACs: the layers add up to the graph's count
    assert result["macs"] == total_macs(tiny_bundle / "model.onnx", batch=32)
    conv = next(la for la in result["layers"] if la["macs"])
    assert conv["gops"] == pytest.approx(2 * conv["macs"] / (conv["ms"] * 1e6))
    events = json.loads((out / "trace.json").read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert sum(e.get("name") == "model_run" for e in events) == TRACE_RUNS  # of 5 timed runs
    assert (out / "layers.png").stat().st_size > 1000
    assert json.loads((out / "profile.json").read_text())["backend"] == backend
    assert "USDT:" not in capfd.readouterr().err  # kineto's start/stop notices are dropped
    with pytest.raises(InputError, match="exists"):
        profile(tiny_bundle, out, backend, data=ptbxl_cache.root, progress=False)


def test_a_failed_profile_leaves_no_default_folder(tiny_bundle, ptbxl_cache, tmp_path, monkeypatch):
    """The default `profile_out/BUNDLE-BACKEND` (both folders new) is gone again after a failure
    inside the run; an `out` whose parent existed keeps that parent."""
    from bell_edge.bench import profile as profile_module

    def broken(*args, **kwargs):
        raise InputError("the backend failed")

    monkeypatch.setattr(profile_module, "_ort_profile", broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="the backend failed"):
        profile(tiny_bundle, None, "ort-int8", runs=1, data=ptbxl_cache.root, progress=False)
    assert not (tmp_path / "profile_out").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(InputError):
        profile(tiny_bundle, tmp_path / "mine" / "p", "ort-int8", runs=1, data=ptbxl_cache.root,
                progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == [tmp_path / "mine"]
    assert not any((tmp_path / "mine").iterdir())
