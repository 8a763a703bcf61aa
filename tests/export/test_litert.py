"""LiteRT (TFLite) INT8 export: float parity, full-integer quantization calibrated on real
windows, the arena estimate, and the gate catching a collapsed conversion (and the per-layer
fallback mending it). Skipped where the converter extra is not installed."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys

import numpy as np
import pytest

from bell_edge.errors import InputError
from bell_edge.export import litert

HAVE_CONVERTER = all(
    importlib.util.find_spec(m) for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
)
needs_converter = pytest.mark.skipif(
    not HAVE_CONVERTER, reason="litert-convert extra not installed (pip install .[litert-convert])"
)


def test_missing_converter_is_one_line(monkeypatch):
    for name in ("litert_torch", "ai_edge_quantizer"):  # imports fail as if not installed
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InputError, match=r"^--litert: \w+ is not installed \(pip") as info:
        litert.require_converter()
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def converted(tiny_classifier, ptbxl100, tmp_path_factory):
    """The tiny classifier as float and INT8 `.tflite`, calibrated on 64 train windows."""
    from bell_edge.compress.calibration import build_manifest, load_windows
    from bell_edge.compress.pipeline import eval_set
    from bell_edge.models.artifact import load_classifier

    clf = load_classifier(tiny_classifier)
    windows, masks = load_windows(build_manifest(ptbxl100, "calib", 64, seed=0, cfg=clf.preprocess))
    masks = masks.astype(np.float32)
    data = eval_set(ptbxl100, clf)
    root = tmp_path_factory.mktemp("litert")
    paths = {"float": root / "model.tflite", "int8": root / "model.int8.tflite"}
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        parity = litert.export_float(clf.model, paths["float"], data.windows[:4], data.masks[:4])
    ranges = litert.calibration_ranges(paths["float"], windows, masks)
    facts = litert.quantize_int8(paths["float"], paths["int8"], ranges)
    return {"clf": clf, "data": data, "paths": paths, "ranges": ranges, "parity": parity,
            "facts": facts, "root": root, "stdout": stdout.getvalue()}  # fmt: skip


@needs_converter
def test_conversion_keeps_stdout_clean_for_json(converted):
    assert converted["stdout"] == ""  # litert-torch's progress lines go to stderr


@pytest.mark.slow
@needs_converter
def test_full_integer_int8_tracks_float(converted):
    from bell_edge.export.onnx import run_onnx

    assert converted["parity"]["max_abs_diff"] < litert.PARITY_ATOL
    int8 = converted["paths"]["int8"]
    it = litert._interpreter(int8)
    ops = {op["op_name"] for op in it._get_ops_details()}
    assert "CONV_2D" in ops or "DEPTHWISE_CONV_2D" in ops
    weights = [d for d in it.get_tensor_details() if d["dtype"] == np.int8]
    assert weights  # int8 weights and activations, not a float model
    data = converted["data"]
    got = run_onnx(int8, data.windows[:48], data.masks[:48], backend="litert")
    ref = run_onnx(converted["paths"]["float"], data.windows[:48], data.masks[:48],
                   backend="litert")  # fmt: skip
    assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.95
    # Smaller than float; on this tiny test model the graph's fixed overhead keeps it above half
    # (the edge model: 1.33 MB against 3.37 MB, benchmarks/results/litert_int8.md).
    assert converted["facts"]["bytes"] < converted["paths"]["float"].stat().st_size


@pytest.mark.slow
@needs_converter
def test_arena_covers_the_largest_activation(converted):
    arena = litert.arena_bytes(converted["paths"]["int8"])
    it = litert._interpreter(converted["paths"]["int8"])
    produced = {o for op in it._get_ops_details() for o in op["outputs"]}
    largest = max(
        int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
        for d in it.get_tensor_details()
        if d["index"] in produced
    )
    assert largest <= arena["activations"] < 64 * largest
    assert arena["ops"] == len(it._get_ops_details())


@pytest.mark.slow
@needs_converter
def test_gate_catches_a_collapsed_conversion_and_the_fallback_mends_it(converted):
    """A conversion broken on purpose: the calibrated range of the logits narrowed 200-fold,
    so the INT8 logits saturate (a failure of full-integer outputs). Through the litert
    backend the collapse shows as a macro AUROC drop; the gate ranks the op outputs, keeps the
    worst in float round by round, and passes."""
    from bell_edge.compress.gate import compare, gated_quantize, onnx_scores
    from bell_edge.export.onnx import export_fp32

    clf, data, paths, root = (converted[k] for k in ("clf", "data", "paths", "root"))
    logits = litert._interpreter(paths["float"]).get_output_details()[0]["name"]
    broken = dict(converted["ranges"])
    broken[logits] = {k: v / 200 if k in ("min", "max") else v for k, v in broken[logits].items()}
    reference = root / "fp32.onnx"
    export_fp32(clf.model, reference, data.windows[:8], data.masks[:8])
    fp32 = onnx_scores(reference, data.windows, data.masks)
    target = root / "broken.int8.tflite"
    litert.quantize_int8(paths["float"], target, broken)
    collapsed = compare(fp32, onnx_scores(target, data.windows, data.masks, "litert"), data,
                        clf.thresholds, bootstrap=0)  # fmt: skip
    assert collapsed["macro_drop"] > 0.1

    def quantize(float_ops):
        litert.quantize_int8(paths["float"], target, broken, float_ops)

    def sensitive(w, m):
        return litert.sensitive_ops(paths["float"], target, w, m, top=20)

    gate = gated_quantize(reference, target, quantize, data, clf.thresholds, max_drop=0.02,
                          backend="litert", sensitive=sensitive, bootstrap=0)  # fmt: skip
    assert gate["passed"] and gate["attempts"] >= 2 and gate["excluded"]
