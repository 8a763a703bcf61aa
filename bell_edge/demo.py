"""`bell-edge demo`: the main job end to end on a small budget, resumable stage by stage.

Stages: prepare the cache, BELL pretraining, fine-tuning with 10% of the labels from BELL and
from random init on the same subset, evaluation of both, an INT8 bundle of the BELL model
(calibrated on the data's records without their labels, gated on its val split), a latency
benchmark of the bundle, and a bedside-monitor replay of one long record. A stage whose outputs
are complete is not redone, so a second run is fast and an interrupted one resumes.
`DIR/summary.json` and `DIR/report.md` (with the plots) hold the results.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bell_edge.bench.latency import bench
from bell_edge.compress.pipeline import export_bundle
from bell_edge.config import FinetuneConfig, PretrainConfig
from bell_edge.data.cache import default_cache_root, prepare
from bell_edge.data.datasets import LAYOUT_TASKS, open_dataset, parse_tasks
from bell_edge.data.records import read_header
from bell_edge.errors import InputError
from bell_edge.files import write_json
from bell_edge.models import pretrained
from bell_edge.replay import replay
from bell_edge.runtime.bundle import read_bundle
from bell_edge.train.evaluate import evaluate_run
from bell_edge.train.finetune import finetune
from bell_edge.train.pretrain import pretrain

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl100-release"
MONITOR_TASKS = ("superdiagnostic", "rhythm")  # the superclasses and AFIB: monitor-ready
BENCH_BACKENDS = ("torch-fp32", "ort-fp32", "ort-int8")
BUDGETS = {
    "small": {"pretrain_epochs": 12, "finetune_epochs": 20},
    "full": {"pretrain_epochs": 100, "finetune_epochs": 60},
}


def default_data(data: str | Path | None) -> Path:
    """--data, else $BELL_EDGE_DATA, else the PTB-XL subset beside the checkout."""
    if data:
        return Path(data)
    if os.environ.get("BELL_EDGE_DATA"):
        return Path(os.environ["BELL_EDGE_DATA"])
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    raise InputError(
        "no data: pass --data PATH or set BELL_EDGE_DATA "
        "(get PTB-XL with `bell-edge data download ptbxl --out DIR`)"
    )


def run_demo(
    data: str | Path | None,
    out: str | Path,
    budget: str = "small",
    report: Callable[[str, float, str], None] = lambda stage, seconds, note: None,
    tasks: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """`tasks` default: the superclasses and the rhythm statements where the layout gives both
    (PTB-XL's release layout), else the layout's own labels."""
    data, out = default_data(data), Path(out)
    plan = BUDGETS[budget]
    tasks = parse_tasks(tasks) or default_tasks(data)
    summary: dict[str, Any] = {"data": str(data), "out": str(out), "tasks": list(tasks)}

    def stage(name: str, done: Callable[[], bool], work: Callable[[], str]) -> None:
        start = time.perf_counter()
        note = "already done, reused" if done() else work()
        report(name, time.perf_counter() - start, note)

    start = time.perf_counter()
    dataset = open_dataset(data, tasks=tasks)
    slot = default_cache_root() / "demo" / (data.name + "".join(f"-{t}" for t in tasks))
    prepared = prepare(dataset, slot, force=True, progress=False)
    cache = prepared.cache
    verb = "reused" if prepared.reused else "written"
    report(
        "prepare",
        time.perf_counter() - start,
        f"{len(cache)} windows {verb}, {len(prepared.skipped)} records skipped",
    )

    pre = out / "pretrain-bell"
    pre_cfg = PretrainConfig(epochs=plan["pretrain_epochs"])
    stage(
        "pretrain BELL",
        lambda: (pre / "summary.json").is_file(),
        lambda: _note(
            pretrain(
                cache.root,
                pre,
                pre_cfg,
                resume=(pre / "checkpoint.pt").is_file(),
                force=True,
                progress=True,
            )
        ),  # fmt: skip
    )
    ft_cfg = FinetuneConfig(label_fraction=0.1, epochs=plan["finetune_epochs"], tasks=tasks)
    runs = {"bell": out / "finetune-bell-10pct", "scratch": out / "finetune-scratch-10pct"}
    # The BELL row starts from the shipped encoder (pretrained long, on a larger corpus) when the
    # package has one; the short pretraining above shows the stage itself.
    shipped = [m["name"] for m in pretrained.available() if m["method"] == "bell"]
    bell_init = shipped[-1] if shipped else pre
    summary["bell_init"] = str(bell_init)
    for name, run in runs.items():
        init = bell_init if name == "bell" else None
        subset = runs["bell"] / "subset.json" if name == "scratch" else None
        stage(
            f"fine-tune {name} (10% labels)",
            lambda run=run: (run / "summary.json").is_file(),
            lambda run=run, init=init, subset=subset: _ft_note(
                finetune(cache.root, run, ft_cfg, init=init, subset=subset, force=True)
            ),
        )
    for name, run in runs.items():
        result = evaluate_run(run, cache.root, split="val", bootstrap=200)
        summary[f"{name}_val_macro_auroc"] = result["macro_auroc"]
        summary[f"{name}_val_macro_auroc_ci"] = result["macro_auroc_ci"]

    bundle = out / "bundle"
    stage(
        "export --int8 + gate",
        lambda: (bundle / "manifest.json").is_file(),
        lambda: _export_note(export_bundle(runs["bell"], bundle, True, data, data, force=True)[1]),
    )
    metrics = read_bundle(bundle).manifest["metrics"]
    summary["fp32_val_macro_auroc"] = metrics["fp32"]["macro_auroc"]
    summary["int8_val_macro_auroc"] = metrics["int8"]["macro_auroc"]
    summary["bundle"] = str(bundle)
    summary["bundle_mb"] = {
        name: round(path.stat().st_size / 1e6, 3)
        for name, path in read_bundle(bundle).files.items()
    }

    bench_file = out / "bench.json"
    stage(
        "bench (batch 1, 1 thread)",
        bench_file.is_file,
        lambda: _bench_note(bench([bundle], (1,), (1,), runs=200, backends=BENCH_BACKENDS,
                                  data=cache.root, out=bench_file, force=True, progress=False)),
    )  # fmt: skip
    rows = {r["backend"]: r for r in json.loads(bench_file.read_text())["results"]}
    summary["latency_ms_batch1"] = {name: round(r["p50_ms"], 3) for name, r in rows.items()}
    summary["int8_speedup_vs"] = {k: round(v, 2) for k, v in rows["ort-int8"]["speedup_vs"].items()}

    record = long_record(data)
    replay_file, plot = out / "monitor.json", out / "monitor.png"
    stage(
        f"monitor replay {record.name}",
        replay_file.is_file,
        lambda: _replay_note(record, bundle, replay_file, plot),
    )
    summary["monitor"] = {
        k: v
        for k, v in json.loads(replay_file.read_text()).items()
        if k in ("record", "seconds", "hops", "analysed", "latency_ms", "lead_flags")
    }
    summary["plots"] = {"monitor": str(plot)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report_markdown(summary))
    return summary


def default_tasks(data: Path) -> tuple[str, ...]:
    layout = open_dataset(data).layout
    return MONITOR_TASKS if all(t in LAYOUT_TASKS[layout] for t in MONITOR_TASKS) else ()


def long_record(data: Path) -> Path:
    """The record to replay: the longest of the CPSC 2018 folder beside the data (12 leads, raw
    500 Hz, another hospital) when it exists, else the longest record of the data itself."""
    folder = data.parent / "cpsc2018"
    refs = open_dataset(folder if folder.is_dir() else data).records
    return max(refs, key=lambda r: _seconds(r.path)).path


def _seconds(path: Path) -> float:
    try:
        header = read_header(path)
    except InputError:
        return 0.0
    return (header.sig_len or 0) / (header.fs or 1)


def _replay_note(record: Path, bundle: Path, target: Path, plot: Path) -> str:
    summary = replay(record, bundle, speed=None, plot=plot, force=True)
    summary.pop("events", None)
    write_json(target, summary)
    lat = summary["latency_ms"]
    return (
        f"{summary['seconds']:.0f} s record, {summary['analysed']}/{summary['hops']} hops "
        f"analysed, p99 {lat['p99']:.1f} ms per hop"
    )


def _bench_note(report: dict) -> str:
    rows = {r["backend"]: r for r in report["results"]}
    int8 = rows["ort-int8"]
    speedups = ", ".join(f"{v:.1f}x {k}" for k, v in int8["speedup_vs"].items())
    return f"INT8 p50 {int8['p50_ms']:.2f} ms: {speedups}"


def report_markdown(s: dict) -> str:
    """DIR/report.md: the summary table and the plots."""
    lat, speed = s["latency_ms_batch1"], s["int8_speedup_vs"]
    mon = s["monitor"]
    lines = [
        "# bell-edge demo",
        "",
        f"Data `{s['data']}`. Macro AUROC on its val split; latency at batch 1, 1 thread.",
        "",
        "| what | value |",
        "|---|---|",
        f"| scratch init, 10% labels | {s['scratch_val_macro_auroc']:.4f} |",
        f"| BELL init (`{s['bell_init']}`), 10% labels | {s['bell_val_macro_auroc']:.4f} |",
        f"| bundle FP32 (ONNX) | {s['fp32_val_macro_auroc']:.4f} |",
        f"| bundle INT8 (ONNX) | {s['int8_val_macro_auroc']:.4f} |",
    ]
    lines += [f"| latency {name}, p50 | {ms:.2f} ms |" for name, ms in lat.items()]
    lines += [f"| INT8 speed-up vs {name} | {x:.2f}x |" for name, x in speed.items()]
    lines += [f"| bundle {name} | {mb} MB |" for name, mb in s["bundle_mb"].items()]
    lines += [
        f"| monitor replay | {mon['record']}: {mon['seconds']:.0f} s, {mon['analysed']}/"
        f"{mon['hops']} hops analysed, p99 {mon['latency_ms']['p99']:.1f} ms per hop |",
        "",
        f"Bundle: `{s['bundle']}`. Benchmark: `bench.json`. Replay: `monitor.json`.",
        "",
        "![monitor replay](monitor.png)",
        "",
    ]
    return "\n".join(lines)


def _export_note(report: dict) -> str:
    gate = report["gate"]
    return f"INT8 macro AUROC drop {100 * gate['macro_drop']:+.2f} points, gate passed"


def _note(summary: dict) -> str:
    return f"{summary['steps']} steps, loss {summary.get('loss', float('nan')):.3f}"


def _ft_note(summary: dict) -> str:
    val = summary["val"]["macro_auroc"]
    return f"val macro AUROC {val:.4f} (best epoch {summary['best_epoch']})"
