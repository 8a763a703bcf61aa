"""INT8 calibration methods and sources compared on a fine-tuned model.

For each calibration method (MinMax, Entropy, Percentile) and each committed calibration manifest,
quantize the model's FP32 ONNX export to the CPU INT8 variant and measure, on the ptbxl100 val
split, the macro AUROC drop against FP32 and the share of thresholded decisions that change.
Usage: python benchmarks/calibration_methods.py RUN [--data DIR] [--manifests M.json ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bell_edge.compress.calibration import load_windows, read_manifest
from bell_edge.compress.gate import compare, onnx_scores
from bell_edge.compress.pipeline import eval_set
from bell_edge.compress.quantize import quantize_cpu
from bell_edge.export.onnx import export_fp32
from bell_edge.models.artifact import load_classifier

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ptbxl100"
DEFAULT_MANIFESTS = [REPO / "calibration" / "ptbxl100-train+cpsc2018.json",
                     REPO / "calibration" / "cpsc2018.json"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="fine-tuned run directory or model.pt")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--manifests", type=Path, nargs="+", default=DEFAULT_MANIFESTS)
    parser.add_argument("--methods", nargs="+", default=["minmax", "percentile", "entropy"])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    clf = load_classifier(args.run)
    data = eval_set(args.data, clf)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        export_fp32(clf.model, fp32_path, data.windows[:32], data.masks[:32])
        fp32 = onnx_scores(fp32_path, data.windows, data.masks)
        for manifest_path in args.manifests:
            manifest = read_manifest(manifest_path)
            windows, masks = load_windows(manifest_path, cfg=clf.preprocess)
            for method in args.methods:
                start = time.perf_counter()
                int8_path = Path(tmp) / f"{method}.onnx"
                quantize_cpu(fp32_path, int8_path, windows, masks.astype("float32"), method=method)
                seconds = time.perf_counter() - start
                result = compare(
                    fp32, onnx_scores(int8_path, data.windows, data.masks), data,
                    clf.thresholds, bootstrap=0,
                )  # fmt: skip
                worst = max(
                    d["drop"] for d in result["per_class_drop"].values() if d["drop"] is not None
                )
                rows.append({
                    "calibration": manifest["name"], "windows": len(windows), "method": method,
                    "fp32_macro_auroc": result["fp32"]["macro_auroc"],
                    "int8_macro_auroc": result["int8"]["macro_auroc"],
                    "macro_drop": result["macro_drop"], "worst_class_drop": worst,
                    "changed_decisions": result["changed_decisions"],
                    "quantize_seconds": round(seconds, 1),
                })  # fmt: skip
                print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration_methods.json").write_text(
        json.dumps({"run": str(args.run), "data": str(args.data.name), "rows": rows}, indent=1)
    )
    md = [
        "# INT8 calibration: methods and sources",
        "",
        f"Command: `python benchmarks/calibration_methods.py {args.run}`. Model: {args.run}. "
        f"Evaluation: `{args.data.name}` val, {data.labels.shape[0]} records. CPU variant "
        "(U8 activations, per-channel S8 weights).",
        "",
        "| calibration set | windows | method | FP32 macro AUROC | INT8 | drop (points) "
        "| worst class drop | decisions changed | quantize s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['calibration']} | {r['windows']} | {r['method']} | {r['fp32_macro_auroc']:.4f} "
            f"| {r['int8_macro_auroc']:.4f} | {100 * r['macro_drop']:+.2f} "
            f"| {100 * r['worst_class_drop']:+.2f} | {100 * r['changed_decisions']:.2f}% "
            f"| {r['quantize_seconds']} |"
        )
    (args.out / "calibration_methods.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
