"""The backend registry: every backend a module with FORMATS and open(); the engine picks a
bundle model from the manifest's table and runs it through the registry."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from bell_edge.errors import InputError
from bell_edge.export.onnx import run_onnx
from bell_edge.runtime import Engine
from bell_edge.runtime.backends import REGISTRY, BackendUnavailable, backend, open_model
from bell_edge.runtime.bundle import BundleError, read_bundle
from bell_edge.runtime.engine import select_model


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_backend_is_a_module_with_formats_and_open(name):
    module = backend(name)
    assert module.FORMATS and all(isinstance(f, str) for f in module.FORMATS)
    assert callable(module.open)


def test_unknown_backend_is_one_line():
    with pytest.raises(InputError, match=r"backend 'onnx-gpu': unknown \(known: ort-cpu"):
        backend("onnx-gpu")


def test_package_exports_engine_and_monitor_without_torch():
    code = ("import sys; from bell_edge.runtime import Engine, StreamingMonitor; "
            "assert 'torch' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_runs_the_table_model_through_the_registry(tiny_bundle, ptbxl_cache):
    bundle = read_bundle(tiny_bundle)
    x = ptbxl_cache.windows[:20]
    m = ptbxl_cache.lead_masks[:20].astype(np.float32)
    for precision, name in (("int8", "int8"), ("fp32", "fp32")):
        engine = Engine(bundle, backend="ort-cpu", precision=precision)
        assert engine.model.name == name
        expected = run_onnx(bundle.models[name].path, x, m)
        np.testing.assert_array_equal(engine.logits(x, m, batch=7), expected)
        np.testing.assert_allclose(engine.probabilities(x, m), 1 / (1 + np.exp(-expected)))


def test_select_prefers_the_model_made_for_the_backend(tiny_bundle):
    bundle = read_bundle(tiny_bundle)
    assert select_model(bundle, "ort-cpu", "int8").name == "int8"
    assert select_model(bundle, "tensorrt", "int8").name == "int8-tensorrt"
    assert select_model(bundle, "ort-cuda", "fp32").name == "fp32"
    with pytest.raises(BundleError, match="no fp32 model that backend litert opens"):
        select_model(bundle, "litert", "fp32")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is here")
def test_tensorrt_without_the_library_is_one_line(tiny_bundle):
    path = read_bundle(tiny_bundle).models["int8-tensorrt"].path
    with pytest.raises(BackendUnavailable, match="backend tensorrt: tensorrt is not installed"):
        open_model("tensorrt", path)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="tensorrt not installed")
def test_tensorrt_engine_from_the_qdq_onnx_computes_the_emulated_int8(tiny_bundle, ptbxl_cache):
    """The engine built from the S8S8 Q/DQ ONNX against ORT running the Q/DQ ops as float ops
    (the arithmetic TensorRT's explicit quantization specifies)."""
    bundle = read_bundle(tiny_bundle)
    x = ptbxl_cache.windows[:40]
    m = ptbxl_cache.lead_masks[:40].astype(np.float32)
    expected = run_onnx(bundle.models["int8-tensorrt"].path, x, m, optimize=False)
    got = Engine(bundle, backend="tensorrt", precision="int8").logits(x, m)
    assert np.abs(got - expected).max() < 0.1 * np.abs(expected).max()
