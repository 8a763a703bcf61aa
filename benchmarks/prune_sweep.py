"""Structured pruning sweep: accuracy against CPU latency, FP32 and INT8.

For each pruning ratio R, prune the fine-tuned checkpoint (`bell_edge.compress.prune`, recovery
fine-tune on its own labeled subset; R = 0 is the checkpoint itself, not fine-tuned further),
export it to a bundle with INT8 through the accuracy gate (`export_bundle`), then measure all
bundles together with `bell_edge.bench.latency.bench`: batch 1, 1 thread, real windows, median
of many runs taken in rotating rounds, so speed-up ratios within the run hold on a loaded
machine while absolute times do not. Macro AUROC is per record on the val split of --data
(ONNX FP32 and INT8 from the gate; torch FP32 from the fine-tuning run). The val split also
picked each run's best epoch, so its absolute AUROC is optimistic; compare ratios with it.

Usage: python benchmarks/prune_sweep.py [--ckpt RUN_OR_MODEL_PT] [--ratios 0,0.3,0.5,0.7]
       [--epochs 8] [--work DIR] [--runs 400] [--reuse]
Writes benchmarks/results/prune_sweep.{json,md} and benchmarks/results/pareto.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from bell_edge.bench.latency import bench  # noqa: E402
from bell_edge.bench.machine import summary as machine_summary  # noqa: E402
from bell_edge.compress.pipeline import export_bundle  # noqa: E402
from bell_edge.compress.prune import prune_run, size  # noqa: E402
from bell_edge.errors import CheckFailed  # noqa: E402
from bell_edge.models.artifact import load_classifier  # noqa: E402
from bell_edge.train.finetune import finetune  # noqa: E402

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ptbxl100"
DEFAULT_CKPT = Path("/work/exp/prune/finetune-bell-100pct/model.pt")
BACKENDS = ("ort-fp32", "ort-int8", "torch-fp32")


def prepare(args) -> list[dict]:
    """Per ratio: the pruned run (or the checkpoint) and its gated INT8 bundle."""
    entries = []
    for ratio in args.ratios:
        start = time.perf_counter()
        tag = f"r{ratio:g}"
        saved = args.work / f"entry-{tag}.json"
        if args.reuse and saved.is_file():
            entries.append(json.loads(saved.read_text()))
            continue
        if ratio == 0:
            run, clf = args.ckpt, load_classifier(args.ckpt)
            info = {**size(clf), "val_macro_auroc_torch": clf.meta["val_macro_auroc"]}
        else:
            run = args.work / f"prune-{tag}"
            report = prune_run(args.ckpt, ratio, args.data, run, finetune, args.epochs, force=True,
                               progress=False)  # fmt: skip
            after = report["after"]
            info = {
                "widths": after["widths"], "params": after["params"], "macs": after["macs"],
                "val_macro_auroc_pruned_unrecovered": after["val_macro_auroc"],
                "val_macro_auroc_torch": after["recovered_val_macro_auroc"],
                "best_epoch": report["best_epoch"],
            }  # fmt: skip
        entry = {"ratio": ratio, "run": str(run), **info}
        try:
            target = args.work / f"bundle-{tag}"
            bundle, report = export_bundle(
                run, target, int8=True, calib=args.calib, eval_data=args.data, force=True
            )
            gate = report["gate"]
            entry.update(
                bundle=str(bundle.root),
                val_macro_auroc_fp32=gate["fp32"]["macro_auroc"],
                val_macro_auroc_int8=gate["int8"]["macro_auroc"],
                int8_drop_points=100 * gate["macro_drop"],
                int8_excluded_nodes=len(gate["excluded"]),
            )
        except CheckFailed as exc:
            entry["gate_failed"] = str(exc)
        entry["prepare_seconds"] = round(time.perf_counter() - start, 1)
        print({k: v for k, v in entry.items() if k != "widths"}, flush=True)
        saved.write_text(json.dumps(entry, indent=1))
        entries.append(entry)
    return entries


def add_latency(entries: list[dict], args) -> dict:
    """p50 latency (ms) of each backend per entry, and speed-ups against R = 0's ORT FP32."""
    bundled = [e for e in entries if "bundle" in e]
    report = bench([e["bundle"] for e in bundled], batches=(1,), threads=(1,), runs=args.runs,
                   backends=BACKENDS, data=args.data, progress=True)  # fmt: skip
    for row in report["results"]:
        e = bundled[row["bundle"]]
        e[f"{row['backend']}_p50_ms"] = row["p50_ms"]
        e[f"{row['backend']}_p90_ms"] = row["p90_ms"]
    base = bundled[0]["ort-fp32_p50_ms"] if bundled and bundled[0]["ratio"] == 0 else None
    for e in bundled:
        if base:
            e["speedup_vs_unpruned_ort_fp32"] = {
                b: base / e[f"{b}_p50_ms"] for b in BACKENDS if f"{b}_p50_ms" in e
            }
    return report


def write_markdown(result: dict, path: Path) -> None:
    s = result["settings"]
    lines = [
        "# Structured pruning sweep",
        "",
        f"Command: `{s['command']}`",
        "",
        f"Model: `{s['ckpt']}`. Recovery: full fine-tuning on the checkpoint's own labeled "
        f"subset, epochs: {s['epochs']} (R = 0 is the checkpoint as it is). INT8: ORT static "
        f"Q/DQ (U8 activations, S8 per-channel weights), calibrated on `{s['calib']}`, gated "
        f"on `{s['data']}` val. Latency: batch 1, 1 thread, real windows, p50 of {s['runs']} "
        "runs in rotating rounds (`bell_edge.bench.latency`).",
        "",
        f"Machine: {machine_summary(result['machine'])}; load average "
        f"{result['machine']['load_average']} at the start.",
        "",
        "| R | widths per branch | params | MMACs | AUROC pruned, not recovered | "
        "AUROC torch FP32 | AUROC ORT FP32 | AUROC ORT INT8 | ORT FP32 ms | ORT INT8 ms | "
        "torch FP32 ms | ORT INT8 vs R=0 ORT FP32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["rows"]:
        if "gate_failed" in e:
            lines.append(f"| {e['ratio']:g} | {e['widths']} | {e['params']:,} | "
                         f"{e['macs'] / 1e6:.1f} | gate failed: {e['gate_failed']} |")  # fmt: skip
            continue
        speed = e.get("speedup_vs_unpruned_ort_fp32", {}).get("ort-int8")
        raw = e.get("val_macro_auroc_pruned_unrecovered")
        lines.append(
            f"| {e['ratio']:g} | {'/'.join(map(str, e['widths']))} | {e['params']:,} | "
            f"{e['macs'] / 1e6:.1f} | {'-' if raw is None else f'{raw:.4f}'} | "
            f"{e['val_macro_auroc_torch']:.4f} | "
            f"{e['val_macro_auroc_fp32']:.4f} | {e['val_macro_auroc_int8']:.4f} | "
            f"{e['ort-fp32_p50_ms']:.2f} | {e['ort-int8_p50_ms']:.2f} | "
            f"{e['torch-fp32_p50_ms']:.2f} | {speed:.2f}x |"
        )
    lines += [
        "",
        "AUROC is macro, per record, on the val split, which also chose each run's best epoch: "
        "read it relative between rows. Absolute times come from a shared 2-core machine; the "
        "ratios within one run are what carries over.",
        "",
    ]
    path.write_text("\n".join(lines))


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for backend, label, marker in (("ort-fp32", "ORT FP32", "o"), ("ort-int8", "ORT INT8", "s")):
        key = "val_macro_auroc_fp32" if backend == "ort-fp32" else "val_macro_auroc_int8"
        pts = [(e[f"{backend}_p50_ms"], e[key], e["ratio"]) for e in rows if key in e]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
        for i, (x, y, ratio) in enumerate(pts):  # FP32 labels above, INT8 below, staggered
            dy = 4 if backend == "ort-fp32" else -11 - 9 * (i % 2)
            ax.annotate(f"R={ratio:g}", (x, y), textcoords="offset points", xytext=(4, dy),
                        fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("latency, batch 1, 1 thread (ms, p50)")
    ax.set_ylabel("macro AUROC, ptbxl100 val")
    ax.set_title("Pruning ratio R: accuracy against CPU latency")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="fine-tuned run/model.pt")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labeled dataset")
    parser.add_argument("--calib", type=Path, default=None, help="[default: --data]")
    parser.add_argument("--ratios", default="0,0.3,0.5,0.7")
    parser.add_argument("--epochs", type=int, default=8, help="recovery epochs")
    parser.add_argument("--runs", type=int, default=400, help="timed runs per model")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prune_sweep"))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the pruned runs and bundles already in --work")  # fmt: skip
    args = parser.parse_args()
    args.ratios = sorted(float(r) for r in args.ratios.split(","))
    args.calib = args.calib or args.data
    args.work.mkdir(parents=True, exist_ok=True)

    rows = prepare(args)
    latency = add_latency(rows, args)
    command = (
        f"python benchmarks/prune_sweep.py --ckpt {args.ckpt} --ratios "
        f"{','.join(f'{r:g}' for r in args.ratios)} --epochs {args.epochs} --runs {args.runs}"
    )
    result = {
        "settings": {
            "command": command,
            "ckpt": str(args.ckpt),
            "data": args.data.name,
            "calib": args.calib.name,
            "epochs": args.epochs,
            "runs": args.runs,
            "latency": latency["settings"],
        },
        "machine": latency["machine"],
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prune_sweep.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, args.out / "prune_sweep.md")
    plot(rows, args.out / "pareto.png")
    print((args.out / "prune_sweep.md").read_text())


if __name__ == "__main__":
    main()
