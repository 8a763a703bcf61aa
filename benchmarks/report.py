"""Latency next to accuracy: bench reports and the bundles' FP32-vs-INT8 metrics in one README.

Inputs are bench reports (JSON of `bell-edge bench B --json --out F`, or of this script, from
any machine) and, with `--bundles`, bundles to bench here first, all in one run (the first is
the base: pruned bundles' speed-ups and AUROC drops refer to it). Writes, into --out:
`bench_NAME.json` (the new run, with --bundles), `README.md` (one section per machine: the issue's
targets, then every result with macro AUROC, its drop against the base's FP32 and the percent
of peak) and `bench_pareto.png` (macro AUROC against latency at batch 1, 1 thread). The README
and the plot are rebuilt from all inputs each time; a bench JSON is replaced only with --force.

Usage:
  python benchmarks/report.py --bundles BASE [PRUNED ...] [--name cpu] [--batch 1,8,32]
         [--threads 1,2] [--runs 100] [REPORT.json ...]
  python benchmarks/report.py benchmarks/results/bench_*.json      # the README only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

from bell_edge.bench.latency import bench, save  # noqa: E402
from bell_edge.bench.machine import summary  # noqa: E402
from bell_edge.errors import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parent
FP32_METRICS = {"torch-fp32", "ort-fp32", "ort-cuda-fp32"}  # the FP32 model's gate metrics
RELATED = (
    ("bench_ort_settings.md", "ONNX Runtime session settings, and the FP32 graph's Conv1d "
     "rewritten as Conv2d (`benchmarks/bench_ort_settings.py`)"),
    ("profile", "per-layer profiles, `bell-edge profile BUNDLE --backend B --out profile/B`: "
     "`layers.png`, `profile.json`, `trace.json` (open in Perfetto or chrome://tracing)"),
    ("prune_sweep.md", "the pruning sweep (`benchmarks/prune_sweep.py`)"),
)  # fmt: skip
INT8_METRICS = {"ort-int8"}  # the gated CPU INT8 variant; other precisions were not evaluated


def machine_key(report: dict) -> str:
    m = report["machine"]
    return f"{m['cpu']}, {m['cores']} cores" + (f", {m['gpu']}" if m.get("gpu") else "")


def auroc(bundle: dict, backend: str) -> float | None:
    metrics = bundle.get("metrics") or {}
    if backend in FP32_METRICS:
        return (metrics.get("fp32") or {}).get("macro_auroc")
    if backend in INT8_METRICS:
        return (metrics.get("int8") or {}).get("macro_auroc")
    return None


def rows_of(report: dict) -> list[dict]:
    """The report's results with bundle name, macro AUROC and the drop against the base FP32."""
    bundles = report["bundles"]
    base = auroc(bundles[0], "ort-fp32")
    rows = []
    for r in report["results"]:
        value = auroc(bundles[r["bundle"]], r["backend"])
        rows.append({
            **r,
            "bundle_name": bundles[r["bundle"]]["name"],
            "mmacs": bundles[r["bundle"]]["macs_per_window"] / 1e6,
            "auroc": value,
            "drop_points": None if value is None or base is None else 100 * (base - value),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["bundle"], r["threads"], r["batch"], r["backend"]))


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, from rows of one report (batch 1, 1 thread; peak at batch 32)."""
    at = {(r["bundle"], r["backend"], r["threads"], r["batch"]): r for r in rows}
    lines = ["| target (1 thread) | measured | target met |", "|---|---|---|"]
    int8 = at.get((0, "ort-int8", 1, 1))
    if int8:
        for ref, label, goal in (("ort-fp32", "ORT FP32", 4), ("torch-fp32", "torch eager", 5)):
            x, best = int8["speedup_vs"].get(ref), int8["best_run_speedup_vs"].get(ref)
            met = "-" if x is None else "yes" if x >= goal else "no"
            lines.append(f"| INT8 (CPU variant) vs {label}, batch 1 | {_f(x, '.2f', 'x')} "
                         f"(best runs {_f(best, '.2f', 'x')}) | {met} (>= {goal}x) |")  # fmt: skip
    pruned = [
        r for r in rows
        if r["bundle"] and r["backend"] == "ort-int8" and r["threads"] == 1 and r["batch"] == 1
        and "base_torch-fp32" in r["speedup_vs"]
    ]  # fmt: skip
    for r in pruned:
        x, drop = r["speedup_vs"]["base_torch-fp32"], r["drop_points"]
        best = r["best_run_speedup_vs"]["base_torch-fp32"]
        met = x >= 10 and drop is not None and drop <= 1
        lines.append(f"| {r['bundle_name']} + INT8 vs base torch eager FP32, batch 1 | "
                     f"{x:.2f}x (best runs {best:.2f}x) at {_f(drop, '+.2f')} points AUROC | "
                     f"{'yes' if met else 'no'} (>= 10x, drop <= 1) |")  # fmt: skip
    for r in rows:
        if r["bundle"] == 0 and r["threads"] == 1 and r["batch"] == 32 and r["device"] == "cpu":
            lines.append(f"| {r['backend']} at batch 32: percent of {r['precision']} peak | "
                         f"{_f(r['percent_of_peak'], '.1f', '%')} of "
                         f"{_f(r['peak_gops'], '.0f')} GOPS | - |")  # fmt: skip
    return lines


def section(report: dict, source: str) -> list[str]:
    s, m, roof = report["settings"], report["machine"], report["roofline"]
    rows = rows_of(report)
    per_core = roof["cpu"]["gops_per_core"]
    base_metrics = report["bundles"][0].get("metrics") or {}
    lines = [
        f"### Run `{source}`",
        "",
        *([f"Measured by `{report['command']}`.", ""] if report.get("command") else []),
        f"Machine: {summary(m)}; load average {m['load_average']} at the start, "
        f"{s.get('load_average_end', '?')} at the end.",
        "",
        f"Settings: batches {s['batches']}, threads {s['threads']}, {s['warmup']} warm-up and "
        f"{s['runs']} timed runs per case in {s['rounds']} rotating rounds; inputs "
        f"{s['input_windows']} real windows of `{Path(s['data']).name}`; ONNX Runtime "
        f"{s['ort_graph_optimization']}. Memory: {s['rss_method']}.",
        "",
        "Bundles: "
        + "; ".join(
            f"{i} `{b['name']}` ({b['macs_per_window'] / 1e6:.1f} MMACs per window)"
            for i, b in enumerate(report["bundles"])
        )
        + f". Macro AUROC: the export gate's, per record on "
        f"{(base_metrics.get('fp32') or {}).get('n_records', '?')} val records; drop in points "
        "against bundle 0's FP32; '-' where that precision was not evaluated.",
        "",
        f"Peaks per core: FP32 {per_core['fp32']:.0f} GOPS, INT8 {per_core['int8']:.0f} GOPS "
        f"({roof['cpu']['assumption']})" + (f" {roof['gpu_note']}" if roof.get("gpu") else ""),
        "",
        *targets(rows),
        "",
        "| bundle | backend | thr | batch | p50 ms | p99 ms | windows/s | size MB | peak RSS MB "
        "| macro AUROC | drop | x ORT FP32 | x torch FP32 | x base torch | % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        x = r["speedup_vs"]
        lines.append(
            f"| {r['bundle_name']} | {r['backend']} | {r['threads']} | {r['batch']} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_wps']:.1f} | "
            f"{r['file_mb']:.2f} | {r['peak_rss_mb']:.0f} | {_f(r['auroc'], '.4f')} | "
            f"{_f(r['drop_points'], '+.2f')} | {_f(x.get('ort-fp32'), '.2f')} | "
            f"{_f(x.get('torch-fp32'), '.2f')} | {_f(x.get('base_torch-fp32'), '.2f')} | "
            f"{_f(r['percent_of_peak'], '.1f')} |"
        )
    skipped: dict[tuple[str, str], list[str]] = {}
    for skip in report["skipped"]:
        where = report["bundles"][skip["bundle"]]["name"]
        if "batch" in skip:
            where += f", batch {skip['batch']}, {skip['threads']} thread(s)"
        skipped.setdefault((skip["backend"], skip["reason"]), []).append(where)
    lines.append("")
    for (backend, reason), where in skipped.items():
        lines.append(f"- skipped {backend} ({'; '.join(where)}): {reason}")
    return [*lines, ""]


def pareto(reports: list[tuple[str, dict]], path: Path) -> bool:
    """Macro AUROC against p50 latency at batch 1, 1 thread: a line per backend through the
    bundles, a marker style per machine."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors: dict[str, object] = {}
    plotted = False
    for (_, report), marker in zip(reports, "osD^v<>", strict=False):
        rows = [r for r in rows_of(report)
                if r["batch"] == 1 and r["threads"] == 1 and r["auroc"] is not None]  # fmt: skip
        for backend in dict.fromkeys(r["backend"] for r in rows):
            pts = [r for r in rows if r["backend"] == backend]
            color = colors.setdefault(backend, f"C{len(colors)}")
            label = backend if len(reports) == 1 else f"{backend} ({machine_key(report)})"
            ax.plot([r["p50_ms"] for r in pts], [r["auroc"] for r in pts], marker=marker,
                    color=color, label=label)  # fmt: skip
            for r in pts:
                ax.annotate(r["bundle_name"].removeprefix("bundle-"), (r["p50_ms"], r["auroc"]),
                            textcoords="offset points", xytext=(4, 3), fontsize=7)  # fmt: skip
            plotted = True
    if plotted:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("p50 latency, batch 1, 1 thread (ms, log scale)")
        ax.set_ylabel("macro AUROC (export gate, val)")
        ax.set_title("Accuracy against latency (up and left is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return plotted


def write_readme(reports: list[tuple[str, dict]], out: Path, command: str) -> None:
    by_machine: dict[str, list[tuple[str, dict]]] = {}
    for source, report in reports:
        by_machine.setdefault(machine_key(report), []).append((source, report))
    lines = [
        "# Latency and accuracy benchmarks",
        "",
        f"Generated by `{command}`. Every backend runs in its own process, the backends in "
        "turn, in rotating rounds: the speed-up ratios within one run are what carries across "
        "machines; absolute times from a shared machine are noisy. Latency per run: p50/p99 "
        "of the timed runs; throughput: windows / mean run time. On a loaded machine, trust the "
        "best-run ratios over the p50 ones: a long run is preempted more often than a short "
        "one, which flatters the faster backend's p50.",
        "",
    ]
    if pareto(reports, out / "bench_pareto.png"):
        lines += ["![accuracy against latency](bench_pareto.png)", ""]
    related = [(name, text) for name, text in RELATED if (out / name).exists()]
    if related:
        lines += ["Related results here:", *(f"- [{n}]({n}): {t}" for n, t in related), ""]
    for machine, entries in by_machine.items():
        lines += [f"## {machine}", ""]
        for source, report in entries:
            lines += section(report, source)
    (out / "README.md").write_text("\n".join(lines))


def _shown(path: Path) -> str:
    """A path as the reader's checkout would name it (relative when below the working dir)."""
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", type=Path, nargs="*", help="bench JSON files to include")
    parser.add_argument("--bundles", type=Path, nargs="+", default=[],
                        help="bundles to bench now, in one run; the first is the base")  # fmt: skip
    parser.add_argument("--name", default="cpu", help="the new run's file: bench_NAME.json")
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--backends", default=None, help="comma-separated [default: all]")
    parser.add_argument("--data", type=Path, default=None, help="real ECGs for inputs")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--force", action="store_true", help="replace a bench_NAME.json")
    args = parser.parse_args()
    command = "python benchmarks/report.py " + " ".join(sys.argv[1:])
    try:
        reports = [(_shown(p), json.loads(p.read_text())) for p in args.reports]
        if args.bundles:
            target = args.out / f"bench_{re.sub(r'[^A-Za-z0-9_.-]', '_', args.name)}.json"
            if target.exists() and not args.force:
                raise InputError(f"{target}: exists (use --force to replace it)")
            report = bench(
                args.bundles,
                [int(b) for b in args.batch.split(",")],
                [int(t) for t in args.threads.split(",")],
                args.warmup,
                args.runs,
                args.backends.split(",") if args.backends else None,
                args.data,
            )
            report["command"] = command
            save(report, target)
            reports.append((_shown(target), report))
    except (InputError, OSError, json.JSONDecodeError) as exc:
        sys.exit(f"error: {exc}")
    if not reports:
        parser.error("give bench JSON files or --bundles")
    args.out.mkdir(parents=True, exist_ok=True)
    write_readme(reports, args.out, command)
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
