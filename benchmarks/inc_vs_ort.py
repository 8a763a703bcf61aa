"""INT8 backends compared on one fine-tuned model: ONNX Runtime static Q/DQ (our default) against
Intel Neural Compressor 3.x accuracy-aware `autotune` on the torch path (PT2E static quant).

Both calibrate on the same unlabeled windows and are scored on the same labeled val split
(macro AUROC per record). INC's `tolerable_loss` is relative, so our absolute budget (--max-drop
points of AUROC) is converted: tolerable_loss = max_drop / FP32 AUROC. Latency: batch 1, 1 thread,
real windows, p50 of interleaved runs (so the ratios hold on a loaded machine):
ORT FP32, ORT INT8, torch eager FP32, the INC model eager, and the INC model after
`torch.compile` (inductor lowers its Q/DQ pattern to int8 kernels), plus the INC model exported
to ONNX and run in ORT.

Needs the `inc` extra: pip install 'neural-compressor[pt]==3.10' (it adds torchao; torch stays).
Usage: python benchmarks/inc_vs_ort.py [RUN] [--data DIR] [--calib DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bell_edge.bench.machine import describe
from bell_edge.bench.machine import summary as machine_summary
from bell_edge.compress.calibration import build_manifest, load_windows
from bell_edge.compress.gate import compare, onnx_scores
from bell_edge.compress.pipeline import CALIBRATION_WINDOWS, eval_set
from bell_edge.compress.quantize import quantize_cpu
from bell_edge.export.onnx import INPUT, MASK, OUTPUT, export_fp32
from bell_edge.models.artifact import load_classifier

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ptbxl100"
DEFAULT_RUN = Path("/work/exp/demo/finetune-bell-10pct/model.pt")


def torch_scores(model, windows: np.ndarray, masks: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch]))
            m = torch.from_numpy(np.ascontiguousarray(masks[i : i + batch]))
            out.append(torch.sigmoid(model(x, m)).numpy())
    return np.concatenate(out)


def inc_autotune(model, windows, masks, data, thresholds, max_drop: float):
    """INC autotune (PT2E static), scored by our macro AUROC; returns the model and a log."""
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import StaticQuantConfig, TuningConfig, autotune

    batch = torch.export.Dim("batch", min=1, max=1024)
    example = (torch.from_numpy(windows[:2]), torch.from_numpy(masks[:2]))
    exported = export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
    if exported is None:
        raise RuntimeError("neural_compressor.torch.export.export failed (see its log)")
    evaluations: list[float] = []  # autotune's own FP32 baseline first, then one per trial

    def macro(m) -> float:
        scores = torch_scores(m, data.windows, data.masks)
        return compare(scores, scores, data, thresholds, bootstrap=0)["fp32"]["macro_auroc"]

    def eval_fn(q_model) -> float:
        evaluations.append(macro(q_model))
        return evaluations[-1]

    def run_fn(prepared) -> None:
        torch_scores(prepared, windows, masks)

    baseline = macro(model)
    tolerable = max_drop / baseline
    config = TuningConfig(
        config_set=[StaticQuantConfig.get_config_set_for_tuning()], tolerable_loss=tolerable
    )
    q_model = autotune(exported, config, eval_fn=eval_fn, run_fn=run_fn, example_inputs=example)
    log = {"baseline": baseline, "tolerable_loss_relative": tolerable, "evaluations": evaluations}
    return q_model, log


def latency(fns: dict, feeds: list, runs: int, rounds: int = 5) -> dict[str, float]:
    """p50 ms of each fn at batch 1, in `rounds` interleaved rounds with rotating order."""
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            for i in range(3):
                fn(feeds[i % len(feeds)])
            for i in range(runs // rounds):
                t0 = time.perf_counter()
                fn(feeds[i % len(feeds)])
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def ort_fn(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda f: session.run([OUTPUT], {INPUT: f[0], MASK: f[1]})[0]


def torch_fn(model):
    def run(f):
        with torch.inference_mode():
            return model(torch.from_numpy(f[0]), torch.from_numpy(f[1]))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, nargs="?", default=DEFAULT_RUN)
    parser.add_argument("--data", type=Path, default=DATA, help="labeled; its val split scores")
    parser.add_argument("--calib", type=Path, default=DATA, help="unlabeled windows (train split)")
    parser.add_argument("--max-drop", type=float, default=0.01, help="absolute AUROC budget")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")

    clf = load_classifier(args.run)
    data = eval_set(args.data, clf)
    manifest = build_manifest(args.calib, args.calib.name, CALIBRATION_WINDOWS, cfg=clf.preprocess)
    windows, masks = load_windows(manifest, cfg=clf.preprocess)
    masks = masks.astype(np.float32)
    result: dict = {"run": str(args.run), "calib_windows": len(windows), "max_drop": args.max_drop}

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_fp32(clf.model, fp32_path, data.windows[:32], data.masks[:32])
        fp32 = onnx_scores(fp32_path, data.windows, data.masks)
        t0 = time.perf_counter()
        quantize_cpu(fp32_path, int8_path, windows, masks)
        ort_seconds = time.perf_counter() - t0
        ort_cmp = compare(
            fp32,
            onnx_scores(int8_path, data.windows, data.masks),
            data,
            clf.thresholds,
            bootstrap=0,
        )
        result["ort"] = {
            "seconds": round(ort_seconds, 1),
            "int8_macro_auroc": ort_cmp["int8"]["macro_auroc"],
            "drop_points": 100 * ort_cmp["macro_drop"],
        }
        print(result, flush=True)

        t0 = time.perf_counter()
        q_model, log = inc_autotune(clf.model, windows, masks, data, clf.thresholds, args.max_drop)
        inc_seconds = time.perf_counter() - t0
        inc_scores = torch_scores(q_model, data.windows, data.masks)
        inc_cmp = compare(fp32, inc_scores, data, clf.thresholds, bootstrap=0)
        result["inc"] = {
            "seconds": round(inc_seconds, 1),
            **log,
            "int8_macro_auroc": inc_cmp["int8"]["macro_auroc"],
            "drop_points": 100 * inc_cmp["macro_drop"],
        }
        print(result, flush=True)

        feeds = [(data.windows[i : i + 1], data.masks[i : i + 1]) for i in range(8)]
        fns = {
            "ort_fp32": ort_fn(fp32_path),
            "ort_int8": ort_fn(int8_path),
            "torch_fp32": torch_fn(clf.model),
            "inc_int8_eager": torch_fn(q_model),
        }
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(q_model)
            torch_fn(compiled)(feeds[0])
            fns["inc_int8_compiled"] = torch_fn(compiled)
            result["inc"]["compile_seconds"] = round(time.perf_counter() - t0, 1)
        except Exception as exc:  # recorded, not fatal: the comparison stands without it
            result["inc"]["compile_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        try:
            onnx_path = Path(tmp) / "inc.onnx"
            torch.onnx.export(
                q_model,
                (torch.from_numpy(feeds[0][0]), torch.from_numpy(feeds[0][1])),
                str(onnx_path),
                input_names=[INPUT, MASK],
                output_names=[OUTPUT],
                dynamo=True,
            )
            fns["inc_onnx_in_ort"] = ort_fn(onnx_path)
            graph = onnx.load(str(onnx_path)).graph
            ops = [n.op_type for n in graph.node]
            result["inc"]["onnx_graph"] = {
                "nodes": len(ops),
                **{op: ops.count(op) for op in ("Conv", "QuantizeLinear", "DequantizeLinear")},
                "int8_initializers": sum(
                    t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
                    for t in graph.initializer
                ),
            }
        except Exception as exc:
            result["inc"]["onnx_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        result["latency_p50_ms"] = latency(fns, feeds, args.runs)
    result["machine"] = describe()
    result["command"] = f"python benchmarks/inc_vs_ort.py {args.run} --runs {args.runs}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inc_vs_ort.json").write_text(json.dumps(result, indent=1))
    (args.out / "inc_vs_ort.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lat, ort_, inc = r["latency_p50_ms"], r["ort"], r["inc"]
    base = lat["ort_fp32"]
    rows = [
        ("ORT FP32 (`model.onnx`)", "ort_fp32"),
        ("ORT INT8 (`model.int8.onnx`, our default)", "ort_int8"),
        ("torch eager FP32", "torch_fp32"),
        ("INC INT8, torch eager", "inc_int8_eager"),
        ("INC INT8, `torch.compile` (inductor)", "inc_int8_compiled"),
        ("INC INT8 exported to ONNX, in ORT", "inc_onnx_in_ort"),
    ]
    lines = [
        "# INT8 backends: ONNX Runtime (default) vs Intel Neural Compressor autotune",
        "",
        f"Command: `{r['command']}`. Model `{r['run']}`; {r['calib_windows']} calibration "
        "windows (ptbxl100 train, labels ignored) for both; macro AUROC per record on "
        "ptbxl100 val. Budget: max drop "
        f"{100 * r['max_drop']:.2f} points absolute = INC `tolerable_loss` "
        f"{inc['tolerable_loss_relative']:.4f} relative (to FP32 {inc['baseline']:.4f}).",
        "",
        f"Machine: {machine_summary(r['machine'])}; load average "
        f"{r['machine']['load_average']} (shared: compare ratios within this run).",
        "",
        "| backend | INT8 macro AUROC | drop (points) | quantization time (s) |",
        "|---|---|---|---|",
        f"| ORT static Q/DQ, MinMax | {ort_['int8_macro_auroc']:.4f} | "
        f"{ort_['drop_points']:+.2f} | {ort_['seconds']} |",
        f"| INC autotune, PT2E static | {inc['int8_macro_auroc']:.4f} | "
        f"{inc['drop_points']:+.2f} | {inc['seconds']} (+ {inc.get('compile_seconds', '-')} "
        "to compile) |",
        "",
        f"INC evaluations (its FP32 baseline, then each trial): {inc['evaluations']}",
        "",
        "| latency, batch 1, 1 thread | p50 ms | vs ORT FP32 |",
        "|---|---|---|",
        *(f"| {label} | {lat[k]:.2f} | {base / lat[k]:.2f}x |" for label, k in rows if k in lat),
        "",
    ]
    if "onnx_graph" in inc:
        lines += [f"INC model exported to ONNX (dynamo): {inc['onnx_graph']}", ""]
    for key in ("compile_error", "onnx_error"):
        if key in inc:
            lines += [f"{key}: {inc[key]}", ""]
    lines += [
        "## Verdict: ONNX Runtime stays the only backend; no `--backend inc`",
        f"- Accuracy: a tie. Both are within the budget and within noise of each other "
        f"(drops {ort_['drop_points']:+.2f} and {inc['drop_points']:+.2f} points). INC's search "
        f"ran {len(inc['evaluations']) - 1} trial(s): the first config already passed, so the "
        "accuracy-aware search bought nothing that our gate (which keeps the most sensitive "
        "nodes in FP32 when the drop is too large) does not already give.",
        f"- Speed: the INC result is a torch model. Eager it takes "
        f"{lat['inc_int8_eager'] / lat['ort_int8']:.0f}x the time of ORT INT8, compiled "
        + (
            f"{lat['inc_int8_compiled'] / lat['ort_int8']:.0f}x"
            if "inc_int8_compiled" in lat
            else "(failed)"
        )
        + "; exported to ONNX it keeps its weights in FP32 (int8 initializers: "
        + str(inc.get("onnx_graph", {}).get("int8_initializers", "-"))
        + ") and runs at "
        + (
            f"{base / lat['inc_onnx_in_ort']:.2f}x ORT FP32 speed"
            if "inc_onnx_in_ort" in lat
            else "(export failed)"
        )
        + ". A bedside monitor runs ONNX Runtime, so only the ORT INT8 model is a deployable gain.",
        f"- Cost: INC took {inc['seconds']} s to quantize against {ort_['seconds']} s (its "
        "compile time depends on inductor's cache in /tmp: a cold one takes far longer), needs "
        "torchao and pydantic beside torch, and gives neither the bundle's ONNX models nor the "
        "TensorRT S8S8 variant.",
        "",
        "Install notes (3.10): `pip install 'neural-compressor[pt]==3.10'` (the `inc` extra) adds "
        "torchao, pydantic, psutil, py-cpuinfo and prettytable and leaves torch 2.13.0+cpu alone; "
        "plain `neural-compressor==3.10` installs none of them, and `neural_compressor.torch` then "
        "fails to import. It needs Python >= 3.11. `TuningConfig(config_set=cfg)` with a single "
        "config crashes `autotune` (it iterates `config_set`): pass a list.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
