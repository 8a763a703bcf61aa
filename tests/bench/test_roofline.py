"""MACs from the ONNX graph against a hand count, and the peak estimates' arithmetic."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bell_edge.bench.machine import cpu_info
from bell_edge.bench.roofline import (
    cpu_macs_per_cycle,
    gpu_peaks,
    node_macs,
    peak_gops,
    total_macs,
)
from bell_edge.errors import InputError


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory):
    """Conv1d(2->4, k3, pad 1) + ReLU, Conv1d(4->8, k5, stride 2, pad 2, groups 2), Linear."""
    net = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv1d(4, 8, 5, stride=2, padding=2, groups=2),
        nn.Flatten(),
        nn.Linear(8 * 25, 3),
    ).eval()
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 2, 50), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17,
                          dynamo=False)  # fmt: skip
    return path


def test_conv1d_net_matches_a_hand_count(conv_net):
    conv1 = 4 * 50 * (2 * 3)  # out channels x length x (in/groups x kernel)
    conv2 = 8 * 25 * (4 // 2 * 5)  # length (50 + 4 - 5) // 2 + 1 = 25
    gemm = 3 * 200
    macs = node_macs(conv_net)
    assert sorted(m for _, m in macs.values()) == sorted([conv1, conv2, gemm])
    assert sorted(op for op, _ in macs.values()) == ["Conv", "Conv", "Gemm"]
    assert total_macs(conv_net, batch=4) == 4 * (conv1 + conv2 + gemm)


def test_matmul_and_transposed_gemm(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3, 4])
    b = numpy_helper.from_array(np.ones((4, 5), np.float32), "b")
    w = numpy_helper.from_array(np.ones((6, 15), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["y"], name="mm"),
        helper.make_node("Reshape", ["y", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["z"], name="fc", transB=1),
    ]
    shape = numpy_helper.from_array(np.array([-1, 15], np.int64), "shape")
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [a], [z], [b, w, shape])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert node_macs(path, batch=2) == {"mm": ("MatMul", 2 * 3 * 5 * 4), "fc": ("Gemm", 2 * 6 * 15)}


def test_unreadable_model_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="bad.onnx: not a readable ONNX model"):
        node_macs(bad)


def test_cpu_peaks_follow_the_isa():
    assert cpu_macs_per_cycle(["fma", "avx2"]) == {"fp32": 16, "int8": 32}
    assert cpu_macs_per_cycle(["avx2", "avx512f", "avx512_vnni"]) == {"fp32": 32, "int8": 128}
    assert cpu_macs_per_cycle(["avx512f", "avx512_vnni", "amx_int8"])["int8"] == 1024
    machine = {"isa": ["avx2"], "cpu_mhz": 2500.0, "cores": 2}
    assert peak_gops(machine, "fp32", "cpu", 1) == pytest.approx(2 * 16 * 2.5)
    assert peak_gops(machine, "int8", "cpu", 2) == pytest.approx(2 * 2 * 32 * 2.5)
    assert peak_gops(machine, "int8", "cpu", 4) == peak_gops(machine, "int8", "cpu", 2)


def test_gpu_datasheet_peaks():
    assert gpu_peaks("NVIDIA H100 80GB HBM3") == {"bf16": 989.0, "int8": 1979.0, "fp32": 494.7}
    assert gpu_peaks("NVIDIA H100 PCIe")["bf16"] == 756.0
    assert gpu_peaks("NVIDIA A10") is None and gpu_peaks(None) is None
    machine = {"gpu": "NVIDIA H100 80GB HBM3"}
    assert peak_gops(machine, "int8", "cuda", 1) == pytest.approx(1979e3)


def test_cpuinfo_parsing():
    text = "processor\t: 0\nmodel name\t: Some CPU\ncpu MHz\t\t: 2000.5\nflags\t\t: fpu avx2 fma\n"
    text += "processor\t: 1\nmodel name\t: Some CPU\ncpu MHz\t\t: 1000.0\nflags\t\t: fpu\n"
    assert cpu_info(text) == {"cpu": "Some CPU", "isa": ["fma", "avx2"], "cpu_mhz": 2000.5}
