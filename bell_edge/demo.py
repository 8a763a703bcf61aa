"""`bell-edge demo`: the main job end to end on a small budget, resumable stage by stage.

Stages: prepare the cache, BELL pretraining, fine-tuning with 10% of the labels from BELL and
from random init on the same subsets (three seeds, each its own subset), BELL's gain over random
init with a paired bootstrap CI, an INT8 bundle of the BELL model
(calibrated on the data's records without their labels, gated on its val split), a latency
benchmark of the bundle, and a bedside-monitor replay of one long record. Each stage is keyed,
as the experiment's are, on the hash of its config and inputs: a finished stage of the same key
is reused, a changed one (another --budget, other data, a new upstream model) is redone, and
the progress line says which and why; an interrupted demo resumes. `DIR/summary.json` and
`DIR/report.md` (with the plots) hold the results.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.bench.latency import bench
from bell_edge.compress.pipeline import export_bundle
from bell_edge.config import SUPERCLASSES, FinetuneConfig, PretrainConfig, config_hash
from bell_edge.data.cache import default_cache_root, file_sha256, prepare
from bell_edge.data.datasets import LAYOUT_TASKS, open_dataset, parse_tasks
from bell_edge.data.paths import resolve_data
from bell_edge.data.records import read_header
from bell_edge.errors import InputError
from bell_edge.files import claim_folder, write_json, write_text
from bell_edge.models import pretrained
from bell_edge.replay import replay
from bell_edge.runtime.bundle import read_bundle
from bell_edge.train.experiment import _key, paired_gains, pretrain_stage, run_scorers, stage
from bell_edge.train.finetune import VAL_SCORES, finetune

MONITOR_TASKS = ("superdiagnostic", "rhythm")  # the superclasses and AFIB: monitor-ready
BENCH_BACKENDS = ("torch-fp32", "ort-fp32", "ort-int8")
BENCH_RUNS = 200
DEMO_SEEDS = 3  # fine-tuning seeds per init: one seed's subset decides too much at 10% labels
MIN_POSITIVES = 5  # val positives a class needs to count in the demo's main comparison
BUDGETS = {
    "small": {"pretrain_epochs": 12, "finetune_epochs": 20},
    "full": {"pretrain_epochs": 100, "finetune_epochs": 60},
}


def run_demo(
    data: str | Path | None,
    out: str | Path,
    budget: str = "small",
    report: Callable[[str, float, str], None] = lambda stage, seconds, note: None,
    tasks: str | tuple[str, ...] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """`tasks` default: the superclasses and the rhythm statements where the layout gives both
    (PTB-XL's release layout), else the layout's own labels. `out` is claimed
    (`files.claim_folder`): a folder bell-edge did not write needs `force`."""
    data, out = resolve_data(data, checkout_folder="ptbxl100-release"), Path(out)
    plan = BUDGETS[budget]
    tasks = parse_tasks(tasks) or default_tasks(data)
    claim_folder(out, force)
    summary: dict[str, Any] = {"data": str(data), "out": str(out), "budget": budget,
                               "tasks": list(tasks)}  # fmt: skip

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
    _check_demo_data(data, cache)

    pre = pretrain_demo(cache.root, out, plan, report)
    ft_cfg = FinetuneConfig(label_fraction=0.1, epochs=plan["finetune_epochs"], tasks=tasks)
    # The BELL rows start from the shipped encoder (pretrained long, on a larger corpus) when the
    # package has one; the short pretraining above shows the stage itself.
    shipped = [m["name"] for m in pretrained.available() if m["method"] == "bell"]
    bell_init = shipped[-1] if shipped else pre
    summary["bell_init"] = str(bell_init)
    init_file = pretrained.verified_path(bell_init) if shipped else pre / "encoder.pt"
    inputs = {"bell": file_sha256(init_file), "scratch": "scratch"}
    runs = {(name, seed): out / f"finetune-{name}-10pct-seed{seed}"
            for seed in range(DEMO_SEEDS) for name in ("bell", "scratch")}  # fmt: skip
    for (name, seed), run in runs.items():
        cfg = dataclasses.replace(ft_cfg, seed=seed)
        init = bell_init if name == "bell" else None
        subset = runs["bell", seed] / "subset.json" if name == "scratch" else None
        key = _key(config_hash(cfg), cache.meta["key"], inputs[name],
                   subset and file_sha256(subset))  # fmt: skip
        keyed_stage(
            f"fine-tune {name} (10%, seed {seed})", run, key, report,
            lambda resume, run=run, cfg=cfg, init=init, subset=subset: _ft_note(
                finetune(cache.root, run, cfg, init=init, subset=subset, force=True,
                         resume=resume)),
        )  # fmt: skip
    summary["bell_vs_scratch"] = seed_comparison(runs, out, cache.classes)

    export_dir = out / "export"
    bundle = export_dir / "bundle"
    exported = runs["bell", 0]
    keyed_stage(
        "export --int8 + gate",
        export_dir,
        _key(file_sha256(exported / "model.pt"), cache.meta["key"], "int8"),
        report,
        lambda _: _export_note(export_bundle(exported, bundle, True, data, data, force=True)[1],
                               export_dir / "summary.json"),
    )  # fmt: skip
    manifest_hash = file_sha256(bundle / "manifest.json")
    summary.update(bundle_summary(read_bundle(bundle)))

    bench_dir = out / "bench"
    bench_file = bench_dir / "summary.json"
    keyed_stage(
        "bench (batch 1, 1 thread)",
        bench_dir,
        _key(manifest_hash, cache.meta["key"], BENCH_BACKENDS, BENCH_RUNS),
        report,
        lambda _: _bench_note(bench([bundle], (1,), (1,), runs=BENCH_RUNS, backends=BENCH_BACKENDS,
                                    data=cache.root, out=bench_file, force=True, progress=False)),
    )  # fmt: skip
    rows = {r["backend"]: r for r in json.loads(bench_file.read_text())["results"]}
    summary["latency_ms_batch1"] = {name: r["p50_ms"] for name, r in rows.items()}  # unrounded:
    # printed with 2 decimals, as the stage line prints it (2.095 had shown as 2.09 and 2.10)
    summary["int8_speedup_vs"] = {k: round(v, 2) for k, v in rows["ort-int8"]["speedup_vs"].items()}

    record = long_record(data)
    monitor_dir = out / "monitor"
    replay_file, plot = monitor_dir / "summary.json", monitor_dir / "monitor.png"
    keyed_stage(
        f"monitor replay {record.name}",
        monitor_dir,
        _key(manifest_hash, str(record), file_sha256(record.with_suffix(".hea"))),
        report,
        lambda _: _replay_note(record, bundle, replay_file, plot),
    )
    summary["monitor"] = {
        k: v
        for k, v in json.loads(replay_file.read_text()).items()
        if k in ("record", "seconds", "hops", "analysed", "latency_ms", "lead_flags")
    }
    summary["plots"] = {"monitor": str(plot)}
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", report_markdown(summary))
    return summary


def seed_comparison(
    runs: dict[tuple[str, int], Path], out: Path, classes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """BELL against random init over the seeds, per class group: mean val macro AUROC of each
    init, each seed's, and BELL's gain with the paired bootstrap CI of `experiment
    label-efficiency` (the same subsets and records make it paired).

    Groups: the superclasses; the other classes with at least MIN_POSITIVES val positives (the
    rhythm statements, with the monitor's tasks); every class with a val positive. An AUROC on
    one or two positives is a coin: three rhythm classes have one positive in ptbxl100's val
    split, and in the last group they move the macro by points."""
    with np.load(next(iter(runs.values())) / VAL_SCORES) as z:
        positives = (z["labels"] > 0.5).sum(axis=0)
    scored = [i for i, n in enumerate(positives) if n > 0]
    supported = [i for i in scored if positives[i] >= MIN_POSITIVES]
    groups = {
        "superclasses": [i for i in supported if classes[i] in SUPERCLASSES],
        f"other classes, >= {MIN_POSITIVES} val positives": [
            i for i in supported if classes[i] not in SUPERCLASSES
        ],
        "every class with a val positive": scored,
    }
    results = [{"init": name, "mode": "full", "fraction": 0.1, "seed": seed, "fold": None,
                "run": run.relative_to(out)} for (name, seed), run in runs.items()]  # fmt: skip
    seeds = sorted({seed for _, seed in runs})
    rows = []
    for group, columns in groups.items():
        if not columns:
            continue
        macro, macro_boot = run_scorers(tuple(columns))
        (gain,) = paired_gains(results, out, scorers=(macro, macro_boot))
        each = {name: [macro(runs[name, seed] / VAL_SCORES) for seed in seeds]
                for name in ("scratch", "bell")}  # fmt: skip
        rows.append({
            "group": group, "classes": [classes[i] for i in columns], "seeds": seeds,
            "scratch": float(np.mean(each["scratch"])), "bell": float(np.mean(each["bell"])),
            "scratch_seeds": each["scratch"], "bell_seeds": each["bell"],
            "gain_points": gain["gain_points"], "ci95_points": gain["ci95_points"],
        })  # fmt: skip
    return rows


def default_tasks(data: Path) -> tuple[str, ...]:
    layout = open_dataset(data).layout
    return MONITOR_TASKS if all(t in LAYOUT_TASKS[layout] for t in MONITOR_TASKS) else ()


def keyed_stage(
    label: str,
    folder: Path,
    key: str,
    report: Callable[[str, float, str], None],
    build: Callable[[bool], str],
) -> None:
    """The experiment's `stage`: redone when its key (config and inputs) changed, else reused;
    `report` says which and why, then what the stage did."""

    def run(log: list[str]) -> str | None:
        notes: list[str] = []
        stage(folder, key, lambda resume: notes.append(build(resume)), log)
        return notes[0] if notes else None

    _reported(label, report, run)


def _reported(
    label: str, report: Callable[[str, float, str], None], run: Callable[[list[str]], str | None]
) -> None:
    """Time `run(log)` and report the stage's reuse reason (the log's last line) and its note."""
    log: list[str] = []
    start = time.perf_counter()
    note = run(log)
    why = log[-1].partition(": ")[2]
    report(label, time.perf_counter() - start, "; ".join(n for n in (why, note) if n))


def pretrain_demo(
    cache_root: Path,
    out: Path,
    plan: dict[str, int],
    report: Callable[[str, float, str], None],
    base: PretrainConfig | None = None,
) -> Path:
    """The BELL pretraining stage, keyed on its config (the budget's epochs) and the cache."""
    run = out / "pretrain-bell"
    cfg = dataclasses.replace(base or PretrainConfig(), epochs=plan["pretrain_epochs"])

    def pretrain_and_note(log: list[str]) -> str:
        pretrain_stage([cache_root], run, cfg, log, progress=True)
        return _note(json.loads((run / "summary.json").read_text()))

    _reported("pretrain BELL", report, pretrain_and_note)
    return run


def _check_demo_data(data: Path, cache) -> None:
    """Refuse, before pretraining, data the demo's fine-tuning cannot use; named as the user
    gave it, not by its cache."""
    if not cache.classes:
        raise InputError(f"{data}: unlabeled; the demo fine-tunes and scores, so it needs labels")
    train, val = len(cache.rows("train")), len(cache.rows("val"))
    batch = PretrainConfig().batch_size
    if train < batch or val == 0:
        raise InputError(
            f"{data}: {train} train and {val} val windows; the demo needs at least {batch} "
            "train windows (one pretraining batch) and a val split"
        )


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
        f"analysed, {per_hop(lat)}"
    )


def per_hop(latency_ms: dict) -> str:
    """A short replay's hop latency: the median and the slowest hop (a p99 over ~50 hops would
    be the slowest one anyway, the first beat detection's)."""
    return f"{latency_ms['p50']:.1f} ms per hop (median), {latency_ms['max']:.1f} ms slowest"


def bundle_summary(bundle) -> dict:
    """The demo's figures of its bundle: val macro AUROC in FP32 and INT8, how many classes that
    macro covers (those with val positives), and the file sizes."""
    metrics = bundle.manifest["metrics"]
    return {
        "fp32_val_macro_auroc": metrics["fp32"]["macro_auroc"],
        "int8_val_macro_auroc": metrics["int8"]["macro_auroc"],
        "bundle_classes_scored": sum(c["fp32"] is not None for c in metrics["per_class"].values()),
        "bundle": str(bundle.root),
        "bundle_mb": {
            name: round(path.stat().st_size / 1e6, 3) for name, path in bundle.files.items()
        },
    }


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
        *(
            f"| {row['group']} ({len(row['classes'])}), 10% labels: scratch / BELL init "
            f"(`{s['bell_init']}`), {len(row['seeds'])} seeds | {row['scratch']:.4f} / "
            f"{row['bell']:.4f}, gain {gain_text(row)} |"
            for row in s["bell_vs_scratch"]
        ),
        f"| bundle FP32 (ONNX), {s['bundle_classes_scored']} classes | "
        f"{s['fp32_val_macro_auroc']:.4f} |",
        f"| bundle INT8 (ONNX), {s['bundle_classes_scored']} classes | "
        f"{s['int8_val_macro_auroc']:.4f} |",
    ]
    lines += [f"| latency {name}, p50 | {ms:.2f} ms |" for name, ms in lat.items()]
    lines += [f"| INT8 speed-up vs {name} | {x:.2f}x |" for name, x in speed.items()]
    lines += [f"| bundle {name} | {mb} MB |" for name, mb in s["bundle_mb"].items()]
    lines += [
        f"| monitor replay | {mon['record']}: {mon['seconds']:.0f} s, {mon['analysed']}/"
        f"{mon['hops']} hops analysed, {per_hop(mon['latency_ms'])} |",
        "",
        "Paths from this report's folder: bundle `export/bundle`, benchmark "
        "`bench/summary.json`, replay `monitor/summary.json`.",
        "",
        "![monitor replay](monitor/monitor.png)",
        "",
    ]
    return "\n".join(lines)


def gain_text(row: dict) -> str:
    """BELL's gain over random init, points of macro AUROC, with its paired 95% CI."""
    lo, hi = row["ci95_points"]
    return f"{row['gain_points']:+.2f} points [{lo:+.2f}, {hi:+.2f}]"


def _export_note(report: dict, target: Path) -> str:
    gate = report["gate"]
    write_json(target, {  # the stage's marker; the bundle's manifest has the rest
        "passed": bool(gate["passed"]), "macro_drop": float(gate["macro_drop"]),
        "max_drop": float(gate["max_drop"]), "excluded": list(gate["excluded"]),
    })  # fmt: skip
    return f"INT8 macro AUROC drop {100 * gate['macro_drop']:+.2f} points, gate passed"


def _note(summary: dict) -> str:
    return f"{summary['steps']} steps, loss {summary.get('loss', float('nan')):.3f}"


def _ft_note(summary: dict) -> str:
    val = summary["val"]["macro_auroc"]
    return f"val macro AUROC {val:.4f} (best epoch {summary['best_epoch']})"
