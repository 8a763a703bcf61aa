"""INT8 Q/DQ variants of a small exported model, calibrated on 64 real windows."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from bell_edge.compress import quantize
from bell_edge.compress.calibration import build_manifest, load_windows
from bell_edge.compress.quantize import (
    calibration_ranges,
    check_trt_qdq,
    quant_preprocess,
    quantize_cpu,
    quantize_trt,
    sensitive_nodes,
)
from bell_edge.config import ModelConfig
from bell_edge.errors import InputError
from bell_edge.export.onnx import export_fp32, run_onnx
from bell_edge.models import ECGClassifier

SMALL = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1))


@pytest.fixture(scope="module")
def calib(ptbxl100) -> tuple[np.ndarray, np.ndarray]:
    return load_windows(build_manifest(ptbxl100, "calib", windows=64, seed=0))


@pytest.fixture(scope="module")
def held_out(ptbxl100) -> tuple[np.ndarray, np.ndarray]:
    return load_windows(build_manifest(ptbxl100, "val", windows=48, seed=1, split="val"))


@pytest.fixture(scope="module")
def models(calib, tmp_path_factory) -> dict[str, Path]:
    """FP32 export (random weights, BatchNorm statistics from real windows) and both variants."""
    torch.manual_seed(0)
    model = ECGClassifier(SMALL)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.momentum = None
    with torch.no_grad():
        model.train()(torch.tensor(calib[0]))
    root = tmp_path_factory.mktemp("quantize")
    paths = {name: root / f"{name}.onnx" for name in ("fp32", "cpu", "trt")}
    export_fp32(model.eval(), paths["fp32"], calib[0][:8], calib[1][:8])
    quantize_cpu(paths["fp32"], paths["cpu"], *calib)
    quantize_trt(paths["fp32"], paths["trt"], *calib)
    return paths


def _scales(path: Path) -> dict[str, np.ndarray]:
    """Activation scales of a Q/DQ model, by quantized tensor."""
    graph = onnx.load(path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {n.input[0]: inits[n.input[1]] for n in graph.node if n.op_type == "QuantizeLinear"}


@pytest.mark.parametrize(("variant", "optimize"), [("cpu", True), ("trt", False)])
def test_int8_logits_track_fp32(models, held_out, variant, optimize) -> None:
    """CPU variant with ORT's int8 kernels; TensorRT variant emulated (Q/DQ as float ops)."""
    expected = run_onnx(models["fp32"], *held_out)
    got = run_onnx(models[variant], *held_out, optimize=optimize)
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.95


def test_trt_rules(models, calib, tmp_path) -> None:
    assert check_trt_qdq(models["trt"]) == []
    faults = check_trt_qdq(models["cpu"])
    assert any("uint8 zero-point, TensorRT needs int8" in f for f in faults)
    assert any("int32 zero-point" in f for f in faults)  # the CPU variant's quantized biases

    conv = next(n.name for n in onnx.load(models["fp32"]).graph.node if n.op_type == "Conv")
    excluded = tmp_path / "excluded.onnx"
    report = quantize_trt(models["fp32"], excluded, *calib, exclude_nodes=[conv])
    assert report["excluded_nodes"] == [conv]
    faults = check_trt_qdq(excluded)
    assert faults and all(f.startswith(f"{conv}: ") for f in faults)
    assert any(" weight " in f and f.endswith("is not dequantized") for f in faults)


def test_entropy_ranges_differ_from_minmax(models, calib, tmp_path, monkeypatch) -> None:
    """The bin options reach the quantizer: Entropy narrows many U8 ranges (scale = range/255).

    Through `quantize_static` alone they would not, and Entropy would equal MinMax.
    """
    monkeypatch.setattr(quantize, "ENTROPY_BINS", (256, 128))  # ORT's KL search is slow
    out = tmp_path / "entropy.onnx"
    assert quantize_cpu(models["fp32"], out, *calib, method="entropy")["method"] == "entropy"
    minmax, entropy = _scales(models["cpu"]), _scales(out)
    assert minmax.keys() == entropy.keys()
    narrower = [k for k in minmax if np.all(entropy[k] < 0.99 * minmax[k])]
    assert len(narrower) > len(minmax) // 4


def test_percentile_ranges_lie_within_minmax(models, calib, tmp_path) -> None:
    pre = tmp_path / "pre.onnx"
    quant_preprocess(models["fp32"], pre)
    minmax = calibration_ranges(pre, *calib, method="minmax")
    percentile = calibration_ranges(pre, *calib, method="percentile")  # asymmetric, for U8
    assert minmax.keys() == percentile.keys()
    low, high = (float(np.squeeze(v)) for v in minmax["ecg"].range_value)
    assert (low, high) == pytest.approx((calib[0].min(), calib[0].max()))
    for key in minmax:
        (p_low, p_high), (m_low, m_high) = percentile[key].range_value, minmax[key].range_value
        assert p_low >= m_low - 1e-6 and p_high <= m_high + 1e-6
    p_low, p_high = percentile["ecg"].range_value
    assert low < p_low < 0 < p_high < high
    with pytest.raises(InputError, match="calibration method 'kl'"):
        calibration_ranges(pre, *calib, method="kl")


def test_sensitive_nodes_are_graph_nodes(models, calib) -> None:
    names = sensitive_nodes(models["fp32"], models["cpu"], calib[0][:16], calib[1][:16], top=4)
    nodes = {n.name: n.op_type for n in onnx.load(models["cpu"]).graph.node}
    assert len(names) == len(set(names)) == 4
    assert all(nodes[name] not in ("QuantizeLinear", "DequantizeLinear") for name in names)


def test_reader_chunks_keep_batches_equal():
    from bell_edge.compress.quantize import WindowReader

    windows = np.zeros((37, 12, 8), np.float32)
    chunks = list(WindowReader(windows, batch_size=16).chunks(20))
    sizes = [[len(b["ecg"]) for b in iter(c.get_next, None)] for c in chunks]
    assert sizes == [[16], [16], [5]]


def test_trt_variant_obeys_explicit_quantization_rules(models) -> None:
    """TensorRT's explicit INT8, read from the graph itself (not through `check_trt_qdq`):
    symmetric int8 Q/DQ with zero-point 0, every conv fed a dequantized activation from a
    QuantizeLinear and a dequantized int8 weight with one scale per output channel."""
    graph = onnx.load(models["trt"]).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        zero = inits[n.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), n.name
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        act, weight = (producer[name] for name in conv.input[:2])
        assert act.op_type == weight.op_type == "DequantizeLinear", conv.name
        assert producer[act.input[0]].op_type == "QuantizeLinear", conv.name
        w = inits[weight.input[0]]
        assert w.dtype == np.int8 and inits[weight.input[1]].shape == (w.shape[0],), conv.name


@pytest.mark.skipif(
    importlib.util.find_spec("polygraphy") is None
    or importlib.util.find_spec("onnx_graphsurgeon") is None,
    reason="polygraphy with onnx-graphsurgeon not installed (the tensorrt extra)",
)
def test_trt_variant_passes_polygraphy_lint(models, tmp_path) -> None:
    """Polygraphy's ONNX linter (ONNX checker and a per-node ONNX Runtime run) finds no error."""
    report = tmp_path / "lint.json"
    run = subprocess.run(
        [str(Path(sys.executable).parent / "polygraphy"), "check", "lint", str(models["trt"]),
         "-o", str(report)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lint = json.loads(report.read_text())
    assert lint["summary"]["failing"] == [] and lint["summary"]["passing"], lint
