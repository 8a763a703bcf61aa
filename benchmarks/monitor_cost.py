"""CPU cost of the bedside monitor: CPU seconds per hour of 12-lead ECG at 500 Hz, 1-s hop.

The stream is the 10 real cpsc2018 records (12 leads, 500 Hz, mV, 209 s in all, one with a
real lead-off) concatenated and looped to `--minutes` of signal (60: a full hour, no
extrapolation). A device delivers packets of `--packet-ms` (40 ms and 1 s by default); every
1-s hop runs quality checks, beat detection, preprocessing (500 -> 100 Hz, band-pass, z-score),
the model through onnxruntime on one thread, and the alarms. The four monitors (INT8, FP32 x two
packet sizes) take the stream in turns of 60 s so that they share the machine load. CPU time is
`time.process_time()`; latency is the event's own figure (wall time of the hop's work). A per-hop
breakdown times each stage alone (the beat detector over 300 consecutive hops). Target: <= 36
CPU-s per ECG-hour (1% of one core), INT8.
Usage: OMP_NUM_THREADS=1 python benchmarks/monitor_cost.py [--bundle B] [--minutes 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from monitor_common import DATA, DEFAULT_BUNDLE, ROOT, machine, machine_line, write

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.preprocess import preprocess_window
from bell_edge.data.records import read_record
from bell_edge.runtime import quality
from bell_edge.runtime.beats import CONTEXT_S, BeatDetector
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

FS = 500
TARGET = 36.0
BLOCK_S = 60  # seconds of signal each monitor gets in turn


def stream(minutes: float) -> np.ndarray:
    """`(samples, 12)` float32: the cpsc2018 records end to end, looped to `minutes`."""
    records = [read_record(p) for p in sorted((DATA / "cpsc2018").glob("*.hea"))]
    assert all(r.fs == FS and r.lead_mask.all() for r in records)
    one = np.concatenate([r.signal.T for r in records])
    n = int(minutes * 60 * FS)
    return np.tile(one, (n // len(one) + 1, 1))[:n]


def take_turns(monitors: dict, x: np.ndarray, packets: dict) -> tuple[dict, dict, dict]:
    """Feed every monitor the stream in turns of BLOCK_S seconds, in packets of `packets[key]`
    samples, so that all of them share the same machine load: CPU seconds, wall seconds and
    events per monitor."""
    cpu, wall = dict.fromkeys(monitors, 0.0), dict.fromkeys(monitors, 0.0)
    events = {key: [] for key in monitors}
    block = BLOCK_S * FS
    for b in range(0, len(x), block):
        for key, monitor in monitors.items():
            packet = packets[key]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for start in range(b, min(b + block, len(x)), packet):
                events[key] += monitor.push(x[start : start + packet])
            cpu[key] += time.process_time() - cpu0
            wall[key] += time.perf_counter() - wall0
    return cpu, wall, events


def run(engines: dict[str, Engine], x: np.ndarray, packets_ms: list[int]) -> list[dict]:
    """One monitor per (precision, packet size), fed the stream by `take_turns`; CPU time is
    summed per monitor."""
    configs = [(p, ms) for p in engines for ms in packets_ms]
    monitors = {c: StreamingMonitor(engines[c[0]], FS, CANONICAL_LEADS, hop_s=1.0) for c in configs}
    cpu, wall, events = take_turns(monitors, x, {c: FS * c[1] // 1000 for c in configs})
    hours = len(x) / FS / 3600
    rows = []
    for c in configs:
        latency = np.array([e.latency_ms for e in events[c] if e.analysed])
        rows.append({
            "precision": c[0], "packet_ms": c[1],
            "cpu_s_per_ecg_hour": round(cpu[c] / hours, 2),
            "wall_s_per_ecg_hour": round(wall[c] / hours, 2),
            "hops": len(events[c]), "analysed": int(len(latency)),
            "latency_ms": {q: round(float(np.percentile(latency, v)), 2)
                           for q, v in (("p50", 50), ("p99", 99), ("max", 100))},
        })  # fmt: skip
    return rows


def breakdown(engine: Engine, x: np.ndarray, n: int = 300) -> dict:
    """Mean CPU ms per hop of each stage alone, on n windows of the stream."""
    span = 10 * FS
    starts = np.linspace(0, len(x) - span, n).astype(int)
    windows = [np.ascontiguousarray(x[s : s + span].T, dtype=np.float64) for s in starts]
    invalid = np.zeros(windows[0].shape, dtype=bool)
    cfg, mask = engine.bundle.preprocess, np.ones((1, 12), np.float32)
    model_in = [preprocess_window(w, FS, cfg)[0][None] for w in windows]
    stages = {
        "quality": lambda i: quality.assess(windows[i], invalid, FS),
        "preprocess": lambda i: preprocess_window(windows[i], FS, cfg),
        "inference": lambda i: engine.probabilities(model_in[i], mask),
    }
    out = {}
    for name, f in stages.items():
        f(0)  # first calls import and allocate: not a hop's cost
        cpu0 = time.process_time()
        for i in range(n):
            f(i)
        out[name] = round(1000 * (time.process_time() - cpu0) / n, 3)
    out["beats"] = beat_stage(x, n)
    return out


def beat_stage(x: np.ndarray, n: int) -> float:
    """Mean CPU ms of `BeatDetector.update` over n consecutive 1-s hops, once its context is
    full (it runs sleepecg on one lead's last 180 s at some hops, not at every one)."""
    detector, span, good = BeatDetector(FS, CANONICAL_LEADS), 10 * FS, list(range(12))
    first = int(CONTEXT_S + 10) * FS
    cpu = 0.0
    for end in range(FS, first + n * FS + 1, FS):
        window = np.ascontiguousarray(x[max(0, end - span) : end].T, dtype=np.float64)
        cpu0 = time.process_time()
        detector.update(window, good, end)
        if end > first:
            cpu += time.process_time() - cpu0
    return round(1000 * cpu / n, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--packet-ms", type=int, nargs="+", default=[40, 1000])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    m = machine()
    x = stream(args.minutes)
    engines = {p: Engine(args.bundle, precision=p) for p in ("int8", "fp32")}
    stages = {p: breakdown(e, x) for p, e in engines.items()}
    rows = run(engines, x, args.packet_ms)
    for row in rows:
        row["stage_cpu_ms"] = stages[row["precision"]]
        print(row)
    result = {
        "bundle": str(args.bundle),
        "stream": f"cpsc2018, 10 records concatenated, looped to {args.minutes:g} min, "
        "12 leads at 500 Hz",
        "hop_s": 1.0,
        "threads": 1,
        "target_cpu_s_per_ecg_hour": TARGET,
        "machine": m,
        "rows": rows,
    }
    md = [
        "# Monitor cost: CPU seconds per ECG-hour",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/monitor_cost.py` "
        f"(bundle `{args.bundle}`). Stream: {result['stream']}, a full {args.minutes:g} minutes "
        "(no extrapolation); 1-s hop, 10-s window, onnxruntime on 1 thread. CPU time is "
        "`time.process_time()` of the push loop; latency is each analysed hop's wall time "
        "(quality, beats, preprocessing, inference, alarms).",
        "",
        machine_line(m),
        "",
        "| model | packet | CPU s per ECG-hour | share of one core | target 36 | hop latency "
        "p50 / p99 / max (ms) | quality / preprocess / inference / beats CPU ms per hop |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat, st = r["latency_ms"], r["stage_cpu_ms"]
        md.append(
            f"| {r['precision'].upper()} | {r['packet_ms']} ms | {r['cpu_s_per_ecg_hour']:.1f} | "
            f"{r['cpu_s_per_ecg_hour'] / 36:.2f}% | "
            f"{'met' if r['cpu_s_per_ecg_hour'] <= TARGET else 'MISSED'} | "
            f"{lat['p50']} / {lat['p99']} / {lat['max']} | "
            f"{st['quality']} / {st['preprocess']} / {st['inference']} / {st['beats']} |"
        )
    md += [
        "",
        f"All four monitors ran in one process, fed the stream in turns of {BLOCK_S} s of "
        "signal, so they shared the same machine load and their ratios hold; absolute CPU "
        "times and latencies are inflated by other load on a shared machine. The stage "
        "columns time each stage alone on 300 windows of the stream; beats: the beat "
        "detector over 300 consecutive hops once its 180-s context is full.",
    ]
    write(args.out, "monitor_cost", result, md)


if __name__ == "__main__":
    main()
