"""`bell-edge export`: a fine-tuned checkpoint to a verified, monitor-ready bundle.

FP32 ONNX (parity-checked) -> INT8 calibrated on unlabeled windows (CPU U8S8 and TensorRT S8S8
variants) -> accuracy gate on a labeled set -> bundle with manifest and model card. A bundle is
written only when every check passes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.compress import card
from bell_edge.compress.calibration import build_manifest, load_windows, read_manifest
from bell_edge.compress.gate import EvalSet, gated_quantize
from bell_edge.compress.quantize import check_trt_qdq, quantize_cpu, quantize_trt
from bell_edge.config import CANONICAL_LEADS, config_hash
from bell_edge.config import to_dict as config_dict
from bell_edge.data import cache as data_cache
from bell_edge.errors import CheckFailed, InputError
from bell_edge.export import litert as litert_export
from bell_edge.export.bundle import check_target, write_bundle
from bell_edge.export.litert import require_converter
from bell_edge.export.onnx import export_fp32
from bell_edge.export.tensorrt import build_engine, require_tensorrt
from bell_edge.models.artifact import classifier_file, load_classifier
from bell_edge.runtime.bundle import Bundle

CALIBRATION_WINDOWS = 512


def _calibration(calib: Path, clf) -> tuple[np.ndarray, np.ndarray, dict]:
    """Windows from a committed manifest (hashes checked) or built from an unlabeled folder."""
    if calib.suffix == ".json":
        manifest = read_manifest(calib)
    else:
        manifest = build_manifest(calib, calib.name, CALIBRATION_WINDOWS, cfg=clf.preprocess)
    if manifest["preprocess_hash"] != config_hash(clf.preprocess):
        raise InputError(f"{calib}: calibrated with other preprocessing than the model's")
    windows, masks = load_windows(manifest, cfg=clf.preprocess)
    return windows, masks.astype(np.float32), manifest


def eval_set(path: Path, clf) -> EvalSet:
    cache = data_cache.load(path, clf.preprocess, progress=False, tasks=clf.meta.get("tasks"))
    split = "val" if len(cache.rows("val")) else "test"
    rows = data_cache.labeled_rows(cache, split, clf.classes, path)
    return EvalSet(
        np.ascontiguousarray(cache.windows[rows]),
        cache.lead_masks[rows].astype(np.float32),
        cache.labels[rows],
        cache.record_ids[rows],
        clf.classes,
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnxruntime", "numpy", "tensorrt"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def export_stages(int8: bool, method: str, engine: str, litert: bool) -> list[str]:
    """The stages `export_bundle` reports through its `step`, in order."""
    names = ["read the check data", "export FP32 ONNX + parity checks"]
    if int8:
        names += ["calibration windows (unlabeled)", f"INT8 ({method}) + accuracy gate",
                  "INT8 TensorRT variant (S8S8) + static check"]  # fmt: skip
        names += ["TensorRT engine"] * (engine == "tensorrt")
        names += ["LiteRT INT8 (full integer) + accuracy gate"] * litert
    return [*names, "write bundle"]


def export_bundle(
    ckpt: str | Path,
    out: str | Path,
    int8: bool = True,
    calib: str | Path | None = None,
    eval_data: str | Path | None = None,
    max_drop: float = 0.01,
    method: str = "minmax",
    engine: str = "onnx",
    force: bool = False,
    step: Callable[[str], None] = lambda name: None,
    litert: bool = False,
    note: Callable[[str], None] = lambda text: None,
) -> tuple[Bundle, dict[str, Any]]:
    """Export `ckpt` to a bundle at `out`; raises CheckFailed (no bundle) when a gate fails.

    `litert`: also a full-integer INT8 `.tflite` (LiteRT, TFLite Micro), calibrated on the
    same windows and gated the same way, on the `litert` backend. `step` is called with each
    name of `export_stages` as its stage starts; `note` with what the user should know."""
    out = Path(out)
    stages = iter(export_stages(int8, method, engine, litert))
    check_target(out, force)
    if litert:
        if not int8:
            raise InputError("--litert makes an INT8 model calibrated on --calib: add --int8")
        require_converter()
    if engine == "tensorrt":
        if not int8:
            raise InputError("--engine tensorrt builds from the INT8 Q/DQ model: add --int8")
        require_tensorrt()
    clf = load_classifier(ckpt)
    if int8 and calib is None:
        raise InputError(
            "--int8 needs --calib PATH (an unlabeled folder or a calibration manifest)"
        )
    if calib is not None and not (Path(calib).is_dir() or Path(calib).suffix == ".json"):
        raise InputError(f"--calib {calib}: not a folder of records or a calibration manifest")
    if eval_data is None and calib is not None and Path(calib).is_dir():
        eval_data = calib  # the calibration source's val split, when it is labeled
    fine_tuning = card.fine_tuning_data(Path(ckpt))
    if eval_data is None:  # else the data the model was fine-tuned on (its val split)
        eval_data = (fine_tuning or {}).get("source")
        if eval_data is None or not Path(eval_data).is_dir():
            raise InputError(
                "export needs --eval PATH: a labeled folder for parity and accuracy checks "
                f"(the fine-tuning data of {ckpt} is not recorded or not here)"
            )
        note(f"checks on {eval_data}, the data {ckpt} was fine-tuned on")
    step(next(stages))  # the first stage starts once the inputs are checked
    data = eval_set(Path(eval_data), clf)

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        step(next(stages))
        sample = (data.windows[:32], data.masks[:32])
        # The bundle's FP32 model has 2-D convs (ONNX Runtime's fastest FP32 form); the INT8
        # models are quantized from the 1-D graph (2-D gains INT8 nothing; TensorRT takes 1-D).
        source = tmp / "source.conv1d.onnx"
        parity = {"model.onnx": export_fp32(clf.model, tmp / "model.onnx", *sample, conv2d=True),
                  "quantization_source": export_fp32(clf.model, source, *sample)}  # fmt: skip
        files = {"model.onnx": tmp / "model.onnx"}
        models = {"fp32": model_entry("model.onnx", "onnx", "fp32", "ort-cpu")}
        report: dict[str, Any] = {"parity": parity}
        manifest_extra: dict[str, Any] = {}
        if int8:
            step(next(stages))
            windows, masks, calib_manifest = _calibration(Path(calib), clf)

            def quantize(excluded):
                return quantize_cpu(source, tmp / "model.int8.onnx", windows, masks,
                                    method=method, exclude_nodes=excluded)  # fmt: skip

            step(next(stages))
            gate = gated_quantize(
                source, tmp / "model.int8.onnx", quantize, data, clf.thresholds,
                max_drop,
            )  # fmt: skip
            report["gate"] = gate
            if not gate["passed"]:
                raise CheckFailed(
                    f"INT8 loses {100 * gate['macro_drop']:.2f} points of macro AUROC "
                    f"(> {100 * max_drop:.2f}) even with {len(gate['excluded'])} nodes in FP32; "
                    "no bundle written"
                )
            step(next(stages))
            quantize_trt(source, tmp / "model.int8.trt.onnx", windows, masks,
                         method=method, exclude_nodes=gate["excluded"])  # fmt: skip
            problems = check_trt_qdq(tmp / "model.int8.trt.onnx")
            if problems:
                raise CheckFailed(
                    f"model.int8.trt.onnx breaks TensorRT's Q/DQ rules: {problems[0]}"
                )
            files["model.int8.onnx"] = tmp / "model.int8.onnx"
            files["model.int8.trt.onnx"] = tmp / "model.int8.trt.onnx"
            models["int8"] = model_entry("model.int8.onnx", "onnx", "int8", "ort-cpu")
            models["int8-tensorrt"] = model_entry("model.int8.trt.onnx", "onnx", "int8",
                                                  "tensorrt")  # fmt: skip
            if engine == "tensorrt":
                step(next(stages))
                report["tensorrt"] = build_engine(tmp / "model.int8.trt.onnx", tmp / "model.plan")
                files["model.plan"] = tmp / "model.plan"
                models["tensorrt-plan"] = model_entry("model.plan", "tensorrt-plan", "int8",
                                                      "tensorrt")  # fmt: skip
            if litert:
                step(next(stages))
                report["litert"] = _litert_int8(clf, tmp, source, windows, masks, data, max_drop)
                files["model.int8.tflite"] = tmp / "model.int8.tflite"
                models["int8-litert"] = model_entry("model.int8.tflite", "tflite", "int8",
                                                    "litert")  # fmt: skip
            manifest_extra = {
                "calibration": {
                    "name": calib_manifest.get("name"),
                    "sha256": _manifest_hash(calib_manifest),
                    "windows": int(len(windows)),
                    "method": method,
                    "sources": calib_manifest.get("sources"),
                },
                "metrics": _metrics_summary(gate),
            }
            if litert:
                lite = report["litert"]
                manifest_extra["litert"] = {**lite["facts"], "metrics": _metrics_summary(lite)}
        step(next(stages))
        manifest = {
            "classes": list(clf.classes),
            "thresholds": clf.thresholds.tolist(),
            "input_shape": [len(CANONICAL_LEADS), clf.preprocess.window_samples],
            "lead_order": list(CANONICAL_LEADS),
            "preprocess": config_dict(clf.preprocess),
            "models": models,
            "preprocess_hash": config_hash(clf.preprocess),
            "model_config": config_dict(clf.model_config),
            "source_checkpoint": str(Path(ckpt).resolve()),
            "source_checkpoint_sha256": data_cache.file_sha256(classifier_file(Path(ckpt))),
            "training": {k: v for k, v in clf.meta.items() if k != "lead_set_thresholds"},
            "lead_set_thresholds": clf.meta.get("lead_set_thresholds", {}),
            "data": {
                "fine_tuning": fine_tuning,
                "pretraining": card.pretraining_data(clf.meta.get("init")),
                "evaluation": card.evaluation_data(Path(eval_data), clf.preprocess),
            },
            "versions": {**versions(), **report.get("tensorrt", {})},
            **manifest_extra,
        }
        model_card = card.model_card(Path(ckpt), clf, manifest, report)
        bundle = write_bundle(out, files, manifest, model_card, force=force)
    return bundle, report


def _litert_int8(clf, tmp: Path, source: Path, windows, masks, data: EvalSet, max_drop: float):
    """The gated LiteRT INT8 model at `tmp/model.int8.tflite`: its gate result with `facts`
    (converter, size, arena estimate); CheckFailed when even the per-layer fallback fails."""
    float_model, int8_model = tmp / "model.tflite", tmp / "model.int8.tflite"
    parity = litert_export.export_float(clf.model, float_model, data.windows[:8], data.masks[:8])
    ranges = litert_export.calibration_ranges(float_model, windows, masks)
    facts: dict[str, Any] = {}

    def quantize(float_ops):
        facts.update(litert_export.quantize_int8(float_model, int8_model, ranges, float_ops))

    def sensitive(w, m):
        return litert_export.sensitive_ops(float_model, int8_model, w, m, top=20)

    gate = gated_quantize(source, int8_model, quantize, data, clf.thresholds, max_drop,
                          backend="litert", sensitive=sensitive)  # fmt: skip
    if not gate["passed"]:
        raise CheckFailed(
            f"LiteRT INT8 loses {100 * gate['macro_drop']:.2f} points of macro AUROC "
            f"(> {100 * max_drop:.2f}) even with {len(gate['excluded'])} ops in float; "
            "no bundle written"
        )
    facts.update(float_parity=parity, arena=litert_export.arena_bytes(int8_model))
    return {**gate, "facts": facts}


def model_entry(file: str, format: str, precision: str, backend: str) -> dict[str, str]:
    """A row of the manifest's `models` table."""
    return {"file": file, "format": format, "precision": precision, "backend": backend}


def _manifest_hash(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _metrics_summary(gate: dict) -> dict:
    keep = ("macro_auroc", "macro_auroc_ci", "macro_auprc", "n_records")
    return {
        "fp32": {k: gate["fp32"][k] for k in keep},
        "int8": {k: gate["int8"][k] for k in keep},
        "macro_drop": gate["macro_drop"],
        "per_class": gate["per_class_drop"],
        "changed_decisions": gate["changed_decisions"],
        "excluded_nodes": gate["excluded"],
    }
