"""Does the grouped-conv layout export a faster graph? The same trained model in the "modules"
layout (12 branches, the export today) and converted to "grouped" (one branch, convs with
groups=12, `models.encoder.convert_layout`): ONNX FP32, INT8 (7-bit and 8-bit weights, the
bundle's calibration), node counts, and ORT latency at batch 1 on 1 thread, interleaved rounds.

    OMP_NUM_THREADS=1 python benchmarks/grouped_export.py RUN OUT --build --time
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bell_edge.compress.pipeline import _calibration, eval_set
from bell_edge.compress.quantize import quantize_cpu
from bell_edge.export.onnx import export_fp32
from bell_edge.models.artifact import load_classifier
from bell_edge.models.encoder import convert_layout
from bell_edge.models.heads import ECGClassifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl100-release"


def main():
    out = Path(sys.argv[2])
    clf = load_classifier(sys.argv[1])
    cfg = replace(clf.model_config, layout="grouped")
    g = ECGClassifier(cfg).eval()
    sd = clf.model.state_dict()
    enc = {k.removeprefix("encoder."): v for k, v in sd.items() if k.startswith("encoder.")}
    conv = convert_layout(
        {k: v for k, v in enc.items() if k.startswith("branches.")}, cfg.n_leads, "grouped"
    )
    rest = {k: v for k, v in enc.items() if not k.startswith("branches.")}
    g.encoder.load_state_dict({**conv, **rest})
    g.head.load_state_dict(clf.model.head.state_dict())
    data = eval_set(DATA, clf)
    x, m = data.windows[:64], data.masks[:64]
    with torch.no_grad():
        d = (
            (g(torch.tensor(x), torch.tensor(m)) - clf.model(torch.tensor(x), torch.tensor(m)))
            .abs()
            .max()
        )
    print("torch grouped vs modules max diff", float(d))
    if "--build" in sys.argv:
        windows, masks, _ = _calibration(DATA, clf)
        for name, model in (("modules", clf.model), ("grouped", g)):
            print(
                name,
                export_fp32(model, out / f"{name}.fp32.onnx", x, m, conv2d=(name == "modules")),
            )
            print(name, export_fp32(model, out / f"{name}.src.onnx", x, m))
            quantize_cpu(out / f"{name}.src.onnx", out / f"{name}.int8.onnx", windows, masks)
            quantize_cpu(
                out / f"{name}.src.onnx",
                out / f"{name}.int8w8.onnx",
                windows,
                masks,
                reduce_range=False,
            )
    if "--time" not in sys.argv:
        return
    files = [f"{n}.{p}.onnx" for n in ("modules", "grouped") for p in ("fp32", "int8", "int8w8")]
    sess = {}
    for f in files:
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        sess[f] = ort.InferenceSession(str(out / f), o, providers=["CPUExecutionProvider"])
        print(f, "nodes", len(onnx.load(str(out / f)).graph.node))

    def feed(s, i):
        return {
            s.get_inputs()[0].name: x[i : i + 1],
            s.get_inputs()[1].name: m[i : i + 1].astype(np.float32),
        }

    times = {f: [] for f in files}
    for _ in range(5):  # rounds, every graph in turn: drift on a shared VM hits all alike
        for f, s in sess.items():
            for i in range(10):
                s.run(None, feed(s, i % 64))
            for i in range(60):
                t = time.perf_counter()
                s.run(None, feed(s, i % 64))
                times[f].append(time.perf_counter() - t)
    for f in files:
        print(f"{f:22s} p50 {1000 * np.median(times[f]):.3f} ms  min {1000 * np.min(times[f]):.3f}")
    (out / "times.json").write_text(json.dumps({f: times[f] for f in files}))


if __name__ == "__main__":
    main()
