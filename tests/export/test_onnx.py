"""FP32 ONNX export: parity with torch on real windows, dynamic batch, BatchNorm folded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from bell_edge.config import ModelConfig
from bell_edge.errors import CheckFailed
from bell_edge.export import onnx as export_onnx
from bell_edge.export.onnx import export_fp32, run_onnx
from bell_edge.models import ECGClassifier

SMALL = ModelConfig(stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1))


@pytest.fixture(scope="module")
def windows(ptbxl_cache) -> tuple[np.ndarray, np.ndarray]:
    """16 real windows; every other one with the chest leads missing."""
    x = np.array(ptbxl_cache.windows[:16])
    mask = ptbxl_cache.lead_masks[:16].astype(np.float32)
    mask[::2, 6:] = 0
    return x, mask


@pytest.fixture(scope="module")
def model(windows) -> ECGClassifier:
    """Random weights, BatchNorm statistics from real windows (so folding is not trivial)."""
    torch.manual_seed(0)
    model = ECGClassifier(SMALL)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.momentum = None  # cumulative average over the batch below
    with torch.no_grad():
        model.train()(torch.tensor(windows[0]))
    return model.eval()


def test_export_matches_torch_with_bn_folded(model, windows, tmp_path) -> None:
    x, mask = windows
    path = tmp_path / "model.onnx"
    report = export_fp32(model, path, x, mask)
    assert report["max_abs_diff"] < 1e-4 and report["opset"] == 17
    graph = onnx.load(path).graph
    assert report["nodes"] == len(graph.node)
    ops = {node.op_type for node in graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    assert [i.name for i in graph.input] == ["ecg", "lead_mask"]
    assert [o.name for o in graph.output] == ["logits"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch(model, windows, tmp_path, batch) -> None:
    x, mask = windows
    path = tmp_path / "model.onnx"
    export_fp32(model, path, x[:4], mask[:4])
    with torch.no_grad():
        expected = model(torch.tensor(x[:batch]), torch.tensor(mask[:batch])).numpy()
    got = run_onnx(path, x[:batch], mask[:batch])
    assert got.shape == (batch, SMALL.n_classes)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_failed_parity_raises_and_writes_nothing(model, windows, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(export_onnx, "PARITY_ATOL", 0.0)
    path = tmp_path / "model.onnx"
    with pytest.raises(CheckFailed, match=r"model\.onnx: ONNX logits differ from torch by"):
        export_fp32(model, path, *windows)
    assert list(tmp_path.iterdir()) == []


def test_conv2d_export_matches_torch_with_every_conv_2d(model, windows, tmp_path) -> None:
    """The bundle's FP32 form: 2-D convs of height 1, parity-checked on the graph written."""
    x, mask = windows
    path = tmp_path / "model.onnx"
    report = export_fp32(model, path, x, mask, conv2d=True)
    assert report["max_abs_diff"] < 1e-4 and report["conv"] == "2d"
    graph = onnx.load(path).graph
    weights = {w.name: w for w in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(len(weights[n.input[1]].dims) == 4 for n in convs)
    with torch.no_grad():
        expected = model(torch.tensor(x[:5]), torch.tensor(mask[:5])).numpy()
    np.testing.assert_allclose(run_onnx(path, x[:5], mask[:5]), expected, atol=1e-4, rtol=0)
