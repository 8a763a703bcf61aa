"""ONNX Runtime session settings tried on a bundle's FP32 and INT8 (CPU variant) models.

Are the models run as fast as ONNX Runtime can? Each setting is a session of its own in this
process; the sessions take turns in rotating rounds (warm-up each round), so the ratios against
the default session of the same model hold on a loaded machine. Inputs: real windows
(`bell_edge.bench.latency.bench_inputs`). Settings: graph optimization levels, FP32's
denormals-as-zero, INT8's `session.x64quantprecision` (the U8U8 kernels that cannot saturate on
CPUs without VNNI), and, with 2 threads, thread-pool spinning and dynamic block sizes. Plus one
graph rewrite: the FP32 model's 1-D convs as 2-D convs of height 1 (`as_conv2d`), which ONNX
Runtime's NCHWc layout optimizer handles while it leaves 1-D convs to im2col + GEMM.

Usage: python benchmarks/bench_ort_settings.py BUNDLE [--batch 1,32] [--runs 200] [--data DIR]
Writes benchmarks/results/bench_ort_settings.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from tqdm import tqdm

from bell_edge.bench.latency import bench_inputs
from bell_edge.bench.machine import describe, summary
from bell_edge.runtime.bundle import read_bundle

ROOT = Path(__file__).resolve().parent
CONV2D = "model.onnx as Conv2d"
LEVEL = ort.GraphOptimizationLevel
# name: (model files it applies to, threads, graph level, session config entries)
CASES = {
    "default (ORT_ENABLE_ALL)": (("model.onnx", "model.int8.onnx"), 1, LEVEL.ORT_ENABLE_ALL, {}),
    "ORT_ENABLE_EXTENDED": (("model.onnx", "model.int8.onnx"), 1, LEVEL.ORT_ENABLE_EXTENDED, {}),
    "ORT_ENABLE_BASIC": (("model.onnx", "model.int8.onnx"), 1, LEVEL.ORT_ENABLE_BASIC, {}),
    "set_denormal_as_zero": (("model.onnx",), 1, LEVEL.ORT_ENABLE_ALL,
                             {"session.set_denormal_as_zero": "1"}),
    "x64quantprecision (U8U8)": (("model.int8.onnx",), 1, LEVEL.ORT_ENABLE_ALL,
                                 {"session.x64quantprecision": "1"}),
    "2 threads": (("model.onnx", "model.int8.onnx"), 2, LEVEL.ORT_ENABLE_ALL, {}),
    "2 threads, no spinning": (("model.onnx", "model.int8.onnx"), 2, LEVEL.ORT_ENABLE_ALL,
                               {"session.intra_op.allow_spinning": "0"}),
    "2 threads, dynamic_block_base 4": (("model.onnx", "model.int8.onnx"), 2,
                                        LEVEL.ORT_ENABLE_ALL, {"session.dynamic_block_base": "4"}),
    "graph rewrite: Conv1d as Conv2d (H=1)": ((CONV2D,), 1, LEVEL.ORT_ENABLE_ALL, {}),
}  # fmt: skip
BASE = "default (ORT_ENABLE_ALL)"


def as_conv2d(src: Path, dst: Path) -> None:
    """Rewrite a bundle FP32 graph (lead Slices feeding per-lead Conv1d branches) so the tensor
    the Slices read gains a height axis of 1 and every Conv is 2-D; adds, ReLUs, global pooling,
    the Concat and the Flatten work unchanged on 4-D tensors."""
    model = onnx.load(src)
    g = model.graph
    weights = {w.name: w for w in g.initializer}
    slices = [n for n in g.node if n.op_type == "Slice"]
    source = {n.input[0] for n in slices}
    if len(source) != 1:
        raise SystemExit(f"{src}: expected lead Slices of one tensor, found {sorted(source)}")
    source = source.pop()
    g.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "h_axis"))
    for n in slices:
        n.input[0] = f"{source}_h"
    for n in g.node:
        if n.op_type != "Conv":
            continue
        w = weights[n.input[1]]
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w)[:, :, None], w.name))
        for a in n.attribute:
            if a.name in ("kernel_shape", "strides", "dilations"):
                a.ints[:] = [1, a.ints[0]]
            elif a.name == "pads":
                a.ints[:] = [0, a.ints[0], 0, a.ints[1]]
    first = min(i for i, n in enumerate(g.node) if n.op_type == "Slice")
    g.node.insert(first, helper.make_node("Unsqueeze", [source, "h_axis"], [f"{source}_h"]))
    del g.value_info[:]
    onnx.save(model, dst)


def session(path: Path, threads: int, level, config: dict) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    bundle = read_bundle(args.bundle)
    batches = [int(b) for b in args.batch.split(",")]
    x, m, data = bench_inputs(bundle, args.data, max(64, 2 * max(batches)))
    load_start = describe()
    paths = {f: bundle.path(f) for f in ("model.onnx", "model.int8.onnx")}
    tmp = tempfile.TemporaryDirectory()
    paths[CONV2D] = Path(tmp.name) / "model2d.onnx"
    as_conv2d(paths["model.onnx"], paths[CONV2D])
    cases = [
        (name, file, session(paths[file], threads, level, config))
        for name, (files, threads, level, config) in CASES.items()
        for file in files
    ]
    check = {"ecg": x[:32], "lead_mask": m[:32]}
    logits = {file: sess.run(["logits"], check)[0] for name, file, sess in cases if name == BASE}
    logits[CONV2D] = next(s for n, f, s in cases if f == CONV2D).run(["logits"], check)[0]
    if np.abs(logits[CONV2D] - logits["model.onnx"]).max() > 1e-4:
        raise SystemExit("the Conv2d rewrite does not compute the FP32 model's logits")
    times = {(name, file, b): [] for name, file, _ in cases for b in batches}
    per_round = -(-args.runs // args.rounds)
    for r in tqdm(range(args.rounds), desc="rounds"):
        shift = r % len(cases)
        for name, file, sess in cases[shift:] + cases[:shift]:
            for b in batches:
                feed = {"ecg": x[:b], "lead_mask": m[:b]}
                for _ in range(args.warmup):
                    sess.run(["logits"], feed)
                for i in range(per_round):
                    s = (i * b) % (len(x) - b + 1)
                    feed = {"ecg": x[s : s + b], "lead_mask": m[s : s + b]}
                    t0 = time.perf_counter()
                    sess.run(["logits"], feed)
                    times[(name, file, b)].append(time.perf_counter() - t0)
    rows = []
    for (name, file, b), t in times.items():
        ms = 1e3 * np.asarray(t)
        rows.append({"setting": name, "model": file, "batch": b, "p50_ms": float(np.median(ms)),
                     "min_ms": float(ms.min()), "runs": len(ms)})  # fmt: skip
    base = {(r["model"], r["batch"]): r for r in rows if r["setting"] == BASE}
    for r in rows:
        if r["model"] == CONV2D:
            r["model"] = "model.onnx"
        ref = base[(r["model"], r["batch"])]
        r["speedup_p50"] = ref["p50_ms"] / r["p50_ms"]
        r["speedup_min"] = ref["min_ms"] / r["min_ms"]
    machine = {**load_start, "load_average_end": round(os.getloadavg()[0], 2)}
    result = {"bundle": str(bundle.root), "data": data, "runs": args.runs, "machine": machine,
              "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_ort_settings.json").write_text(json.dumps(result, indent=1))
    lines = [
        "# ONNX Runtime session settings",
        "",
        f"Command: `python benchmarks/bench_ort_settings.py {args.bundle} --batch {args.batch} "
        f"--runs {args.runs}`. Machine: {summary(machine)}; load average "
        f"{machine['load_average']} at the start, {machine['load_average_end']} at the end.",
        "",
        "Speed-ups are against the default session (ORT_ENABLE_ALL, 1 thread) of the same "
        "model and batch, in the same run: p50s, and fastest runs (less touched by load). "
        "INT8 against FP32: compare the p50 or min columns across models.",
        "",
        "| model | batch | setting | p50 ms | min ms | speed-up (p50) | speed-up (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["model"], r["batch"], -r["speedup_min"])):
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['setting']} | {r['p50_ms']:.3f} | "
            f"{r['min_ms']:.3f} | {r['speedup_p50']:.2f}x | {r['speedup_min']:.2f}x |"
        )
    (args.out / "bench_ort_settings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
