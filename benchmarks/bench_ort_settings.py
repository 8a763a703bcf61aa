"""Which graph and ONNX Runtime session settings run a bundle's model fastest on this CPU.

The graphs are rebuilt from the bundle's source checkpoint, so today's and the candidate forms
are measured side by side: FP32 as exported (1-D convs) and with every conv as a 2-D conv of
height 1 (`bell_edge.export.onnx.as_conv2d`: ONNX Runtime's NCHWc layout optimizer takes 2-D
convs only), and INT8 (U8 activations, per-channel S8 weights, the bundle's calibration
windows and FP32-kept nodes) quantized from each, with 7-bit weights (`reduce_range`, safe
without VNNI) and full 8-bit ones, and the Conv2d one with the 12 lead stems kept in FP32 (a
stem sees one input channel, where ONNX Runtime's INT8 conv is slowest per MAC). Each INT8
graph also runs with `session.x64quantprecision` (U8U8 kernels that cannot saturate). Every
session runs in this process; they take turns in rotating rounds (warm-up each round), so
ratios within the run hold on a loaded machine; the load average is recorded every round.
Accuracy: each session's logits on 64 real windows against the FP32 Conv1d graph's (max |diff|
and SQNR).

Usage: python benchmarks/bench_ort_settings.py BUNDLE [--calib MANIFEST] [--batch 1,32]
       [--runs 300] [--data DIR] [--note "other jobs paused"]
Writes benchmarks/results/bench_ort_settings_<ISA>.{json,md} (ISA: amx_int8, avx512_vnni or avx2,
the richest one the CPU has).
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
from tqdm import tqdm

from bell_edge.bench.backends import source_checkpoint
from bell_edge.bench.latency import bench_inputs
from bell_edge.bench.machine import describe, summary
from bell_edge.compress.calibration import load_windows, read_manifest
from bell_edge.compress.quantize import quantize_cpu
from bell_edge.export.onnx import as_conv2d, export_fp32
from bell_edge.models.artifact import load_classifier
from bell_edge.runtime.bundle import read_bundle

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
X64 = {"session.x64quantprecision": "1"}
BASE = ("fp32 Conv1d", "default")
STEM_CONV = "/stem/stem.0/Conv"
# name: (precision, graph, 8-bit weights, stems in FP32)
GRAPHS = {
    "fp32 Conv1d": ("fp32", "conv1d", None, None),
    "fp32 Conv2d": ("fp32", "conv2d", None, None),
    "int8 Conv1d 7-bit w": ("int8", "conv1d", False, False),
    "int8 Conv1d 8-bit w": ("int8", "conv1d", True, False),
    "int8 Conv2d 7-bit w": ("int8", "conv2d", False, False),
    "int8 Conv2d 8-bit w": ("int8", "conv2d", True, False),
    "int8 Conv2d 7-bit w, FP32 stems": ("int8", "conv2d", False, True),
}


def session(path: Path, threads: int, level, config: dict) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_graphs(bundle, calib: Path, x: np.ndarray, m: np.ndarray, tmp: Path) -> dict:
    """The graphs of GRAPHS as files in `tmp`."""
    clf = load_classifier(source_checkpoint(bundle))
    paths = {"fp32 Conv1d": tmp / "conv1d.onnx", "fp32 Conv2d": tmp / "conv2d.onnx"}
    export_fp32(clf.model, paths["fp32 Conv1d"], x[:32], m[:32])
    conv2d = as_conv2d(onnx.load(paths["fp32 Conv1d"]))
    onnx.save(conv2d, paths["fp32 Conv2d"])
    stems = [n.name for n in conv2d.graph.node if n.name.endswith(STEM_CONV)]
    windows, masks = load_windows(read_manifest(calib), cfg=clf.preprocess)
    excluded = (bundle.manifest.get("metrics") or {}).get("excluded_nodes", [])
    for name, (precision, graph, full, fp32_stems) in GRAPHS.items():
        if precision == "int8":
            suffix = "-fp32stems" if fp32_stems else ""
            paths[name] = tmp / f"{graph}-{8 if full else 7}bit{suffix}.int8.onnx"
            quantize_cpu(paths[f"fp32 {graph.capitalize()}"], paths[name], windows,
                         masks.astype(np.float32),
                         exclude_nodes=excluded + (stems if fp32_stems else []),
                         reduce_range=not full)  # fmt: skip
    return paths


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10((ref**2).sum() / max(((ref - got) ** 2).sum(), 1e-30)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--calib", type=Path,
                        default=REPO / "calibration" / "ptbxl100-train+cpsc2018.json")  # fmt: skip
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--note", default="", help="How the machine was shared, for the report.")
    args = parser.parse_args()

    bundle = read_bundle(args.bundle)
    batches = [int(b) for b in args.batch.split(",")]
    x, m, data = bench_inputs(bundle, args.data, max(64, 2 * max(batches)))
    machine = describe()
    tmp = tempfile.TemporaryDirectory()
    paths = build_graphs(bundle, args.calib, x, m, Path(tmp.name))
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cases = [(g, "default", session(paths[g], 1, level, {})) for g in GRAPHS]
    cases += [(g, "x64quantprecision", session(paths[g], 1, level, X64))
              for g, (p, *_) in GRAPHS.items() if p == "int8"]  # fmt: skip
    ref = next(s for g, c, s in cases if (g, c) == BASE).run(
        ["logits"], {"ecg": x, "lead_mask": m}
    )[0]
    accuracy = {}
    for g, c, s in cases:
        got = s.run(["logits"], {"ecg": x, "lead_mask": m})[0]
        accuracy[(g, c)] = {"max_abs_logit_diff": float(np.abs(got - ref).max()),
                            "sqnr_db": sqnr_db(ref, got)}  # fmt: skip
    if accuracy[("fp32 Conv2d", "default")]["max_abs_logit_diff"] > 1e-4:
        raise SystemExit("the Conv2d rewrite does not compute the FP32 model's logits")
    times = {(g, c, b): [] for g, c, _ in cases for b in batches}
    per_round = -(-args.runs // args.rounds)
    loads = []
    for r in tqdm(range(args.rounds), desc="rounds"):
        loads.append(round(os.getloadavg()[0], 2))
        shift = r % len(cases)
        for g, c, sess in cases[shift:] + cases[:shift]:
            for b in batches:
                feed = {"ecg": x[:b], "lead_mask": m[:b]}
                for _ in range(args.warmup):
                    sess.run(["logits"], feed)
                for i in range(per_round):
                    s = (i * b) % (len(x) - b + 1)
                    feed = {"ecg": x[s : s + b], "lead_mask": m[s : s + b]}
                    t0 = time.perf_counter()
                    sess.run(["logits"], feed)
                    times[(g, c, b)].append(time.perf_counter() - t0)
    rows = []
    for (g, c, b), t in times.items():
        ms = 1e3 * np.asarray(t)
        rows.append({"graph": g, "setting": c, "batch": b, "p50_ms": float(np.median(ms)),
                     "min_ms": float(ms.min()), "runs": len(ms), **accuracy[(g, c)]})  # fmt: skip
    base = {r["batch"]: r for r in rows if (r["graph"], r["setting"]) == BASE}
    for r in rows:
        r["speedup_p50_vs_fp32_conv1d"] = base[r["batch"]]["p50_ms"] / r["p50_ms"]
        r["speedup_min_vs_fp32_conv1d"] = base[r["batch"]]["min_ms"] / r["min_ms"]
    machine["load_average_rounds"] = loads
    machine["load_average_end"] = round(os.getloadavg()[0], 2)
    isa = next(f for f in ("amx_int8", "avx512_vnni", "avx2") if f in machine["isa"] + ["avx2"])
    result = {"bundle": str(bundle.root), "data": data, "runs": args.runs, "isa": isa,
              "machine": machine, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_ort_settings_{isa}.json").write_text(json.dumps(result, indent=1))
    lines = [
        f"# ONNX Runtime graphs and settings, {isa}",
        "",
        f"Command: `python benchmarks/bench_ort_settings.py {args.bundle} --batch {args.batch} "
        f"--runs {args.runs}`. Machine: {summary(machine)}; load average per round "
        f"{loads}, {machine['load_average_end']} at the end. {args.note}".rstrip(),
        "",
        "All on 1 thread, ORT_ENABLE_ALL. Speed-ups are against the FP32 Conv1d graph (the "
        "export before this change) at the same batch, in the same run: p50s, and fastest runs "
        "(least touched by load). Logit error: against the FP32 Conv1d graph on 64 real "
        "windows.",
        "",
        "| graph | setting | batch | p50 ms | min ms | x FP32 Conv1d (p50) | x (min) | "
        "max abs logit diff | SQNR dB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["batch"], -r["speedup_p50_vs_fp32_conv1d"])):
        lines.append(
            f"| {r['graph']} | {r['setting']} | {r['batch']} | {r['p50_ms']:.3f} | "
            f"{r['min_ms']:.3f} | {r['speedup_p50_vs_fp32_conv1d']:.2f}x | "
            f"{r['speedup_min_vs_fp32_conv1d']:.2f}x | {r['max_abs_logit_diff']:.2g} | "
            f"{r['sqnr_db']:.1f} |"
        )
    (args.out / f"bench_ort_settings_{isa}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
