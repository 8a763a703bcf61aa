"""Latency of a bundle's models on every backend this machine has, on real ECG windows.

Each (bundle, backend, threads) runs in its own worker process (`bell_edge.bench.backends`)
that imports only that backend's runtime, so its peak RSS is its own: `peak_rss_mb` is the whole
process, `rss_over_base_mb` what it grew by after Python, numpy and the input windows were in
(the runtime library, the model, its buffers). The parent runs the processes in turn, never two
at once, in rounds: every round each process warms up again, then times `runs / rounds` runs
of each batch size, and the order of the processes rotates between rounds. So a burst of load
from elsewhere falls on every backend alike and the speed-up ratios, taken in the same run, are
what to compare across machines; absolute times on a shared machine are noisy. `speedup_vs`
divides p50s; `best_run_speedup_vs` divides the fastest runs, which preemption by other
processes touches least (a long run is preempted more often than a short one, so under load
p50 ratios flatter the faster backend).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bell_edge.bench import roofline
from bell_edge.bench.backends import (
    BACKENDS,
    bundle_model,
    encode_array,
    model_bytes,
    read_json,
    recorded_checkpoint,
    send_json,
    skip_reason,
)
from bell_edge.bench.machine import describe
from bell_edge.data import cache as data_cache
from bell_edge.data.paths import resolve_data
from bell_edge.errors import InputError
from bell_edge.files import check_file_target, write_json
from bell_edge.runtime.bundle import Bundle, read_bundle
from bell_edge.runtime.engine import select_model

RSS_METHOD = (
    "one worker process per (bundle, backend, threads), importing only that backend; "
    "peak_rss_mb = its VmHWM (/proc/self/status), rss_over_base_mb = VmHWM minus its value "
    "once Python, numpy and the inputs were loaded (GPU rows: host memory only)"
)
ROUNDS = 5
MIN_INPUTS = 64


# ---- inputs -------------------------------------------------------------------------------


def default_data(bundle: Bundle) -> Path:
    """The data resolver's folder (--data unset), else the bundle's calibration sources."""
    sources = (bundle.manifest.get("calibration") or {}).get("sources") or []
    return resolve_data(None, [Path(s["root"]) for s in sources if s.get("root")])


def bench_inputs(
    bundle: Bundle, data: str | Path | None, n: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, str]:
    """`n` real windows `(n, leads, samples)` and lead masks `(n, leads)`, preprocessed with the
    bundle's settings, spread evenly over the test split (all windows when there is none)."""
    data = Path(data) if data else default_data(bundle)
    cache = data_cache.load(data, bundle.preprocess, progress=progress)
    if tuple(cache.windows.shape[1:]) != bundle.input_shape:
        raise InputError(
            f"{data}: windows {tuple(cache.windows.shape[1:])}, the bundle takes "
            f"{bundle.input_shape}"
        )
    rows = cache.rows("test") if cache.has_splits and len(cache.rows("test")) else cache.rows("all")
    rows = rows[np.linspace(0, len(rows) - 1, n).astype(int)]
    windows = np.ascontiguousarray(cache.windows[rows], dtype=np.float32)
    return windows, cache.lead_masks[rows].astype(np.float32), str(data)


# ---- the benchmark --------------------------------------------------------------------------


def _stats(times: Sequence[float], batch: int) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "min_ms": float(ms.min()),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "throughput_wps": float(batch * 1e3 / ms.mean()),
        "runs": len(ms),
    }


def bench(
    bundles: Sequence[str | Path | Bundle],
    batches: Sequence[int] = (1, 8, 32),
    threads: Sequence[int] = (1, 2),
    warmup: int = 10,
    runs: int = 100,
    backends: Sequence[str] | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Latency of every (bundle, backend, threads, batch) that can run here; the report is
    also written to `out` as JSON when given (atomically; an existing file only with `force`).

    The first bundle is the base that `speedup_vs["base_*"]` refers to (say, pruned bundles
    against the unpruned one). Backends that cannot run are listed in `skipped`, with why.
    """
    if out is not None:
        check_file_target(out, force)
    bundles = [b if isinstance(b, Bundle) else read_bundle(b) for b in bundles]
    names = list(backends or BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise InputError(f"unknown backend {unknown[0]!r} (known: {', '.join(BACKENDS)})")
    if not batches or min(batches) < 1 or not threads or min(threads) < 1 or runs < 1:
        raise InputError("batch sizes, thread counts and runs must be positive")
    for bundle in bundles[1:]:
        if bundle.input_shape != bundles[0].input_shape:
            raise InputError(f"{bundle.root}: input shape differs from {bundles[0].root}'s")
    machine = describe()
    skipped, plan = [], []
    for i, bundle in enumerate(bundles):
        for name in names:
            reason = skip_reason(bundle, name, machine["gpu"])
            if reason:
                skipped.append({"bundle": i, "backend": name, "reason": reason})
            else:
                plan.append((i, bundle, name))
    if not plan:  # before reading any ECG
        _nothing_to_measure(skipped)
    x, m, data_used = bench_inputs(bundles[0], data, max(MIN_INPUTS, 2 * max(batches)), progress)
    inputs = {"windows": encode_array(x), "masks": encode_array(m)}
    workers = []
    for i, bundle, name in plan:
        for t in threads:
            request = {"bundle": str(bundle.root), "backend": name, "threads": t, **inputs}
            workers.append(Worker(i, name, t, request, batches))
    try:
        ready = _start(workers, skipped)
        if not ready:
            _nothing_to_measure(skipped)
        rounds = min(ROUNDS, runs)
        per_round = [runs // rounds + (r < runs % rounds) for r in range(rounds)]
        dead: set[Worker] = set()
        with tqdm(total=rounds * len(ready), desc="bench", unit="block", leave=False,
                  disable=not progress) as bar:  # fmt: skip
            for r in range(rounds):
                shift = r % max(1, len(ready))
                for w in ready[shift:] + ready[:shift]:
                    if w not in dead:
                        _measure(w, batches, warmup if r == 0 else min(warmup, 3), per_round[r],
                                 dead)  # fmt: skip
                    bar.update()
        for w in ready:
            if w not in dead:
                w.memory = w.ask({"stop": True})["memory"]
    finally:
        for w in workers:
            w.close()
    settings = {
        "batches": list(batches),
        "threads": list(threads),
        "warmup": warmup,
        "runs": runs,
        "rounds": min(ROUNDS, runs),
        "data": data_used,
        "input_windows": len(x),
        "rss_method": RSS_METHOD,
        "ort_graph_optimization": "ORT_ENABLE_ALL (the default)",
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    report = _report(bundles, ready, skipped, machine, settings)
    if out is not None:
        save(report, out)
    return report


def _nothing_to_measure(skipped: list[dict]) -> None:
    reasons = "; ".join(dict.fromkeys(f"{s['backend']}: {s['reason']}" for s in skipped))
    raise InputError(f"nothing to measure: no backend asked for runs here ({reasons})")


def _measure(w: Worker, batches, warmup: int, runs: int, dead: set) -> None:
    """One round of `w` over the batch sizes. A worker that dies (out of memory, a crash) joins
    `dead`, and all its cases are skipped with why: a part of its rounds would be a biased
    sample."""
    for b in batches:
        try:
            reply = w.ask({"batch": b, "warmup": warmup, "runs": runs})
        except RuntimeError as exc:
            w.errors = {b: str(exc) for b in batches}
            dead.add(w)
            return
        if "error" in reply:
            w.errors[b] = reply["error"]
        else:
            w.times[b].extend(reply["times"])


def save(report: dict, path: str | Path) -> None:
    """Write a report as JSON through a temporary file and a rename."""
    write_json(path, report)


class Worker:
    """A `python -m bell_edge.bench.backends` process serving one (bundle, backend, threads)."""

    def __init__(self, bundle: int, backend: str, threads: int, request: dict, batches) -> None:
        self.bundle, self.backend, self.threads = bundle, backend, threads
        self.times: dict[int, list[float]] = {b: [] for b in batches}
        self.errors: dict[int, str] = {}
        self.logits: np.ndarray | None = None
        self.memory: dict[str, float] = {}
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bell_edge.bench.backends"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.send(request)

    def send(self, obj) -> None:
        try:
            send_json(self.proc.stdin, obj)
        except BrokenPipeError:  # it has exited
            raise self._exited() from None

    def receive(self) -> dict:
        try:
            return read_json(self.proc.stdout)
        except EOFError:
            raise self._exited() from None

    def _exited(self) -> RuntimeError:
        """Why the worker is gone: its exit code and the last line it wrote to stderr."""
        self.proc.wait()
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no message"
        return RuntimeError(f"worker exited with code {self.proc.returncode}: {last}")

    def ask(self, obj):
        self.send(obj)
        return self.receive()

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(BrokenPipeError):  # a dead worker's unsent bytes
                pipe.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _start(workers: list[Worker], skipped: list[dict]) -> list[Worker]:
    """The workers that loaded their backend (with their check logits); the rest go to skipped."""
    ready = []
    for w in workers:
        try:
            reply = w.receive()
        except RuntimeError as exc:  # the worker died while loading: a skip, with its message
            reply = {"skip": str(exc)}
        if "ready" in reply:
            w.logits = np.asarray(reply["ready"], dtype=np.float32)
            ready.append(w)
            continue
        entry = {"bundle": w.bundle, "backend": w.backend, "reason": reply["skip"]}
        if entry not in skipped:  # once, not per thread count
            skipped.append(entry)
    return ready


def _report(bundles, ready, skipped, machine, settings) -> dict[str, Any]:
    infos = [
        {
            "path": str(b.root),
            "name": b.root.name,
            "macs_per_window": roofline.total_macs(select_model(b, "ort-cpu", "fp32").path, 1),
            "model_config": b.manifest.get("model_config"),
            "metrics": b.manifest.get("metrics"),
            "source_checkpoint": b.manifest.get("source_checkpoint"),
        }
        for b in bundles
    ]
    fp32 = {w.bundle: w.logits for w in ready if w.backend == "ort-fp32"}
    rows = []
    for w in ready:
        backend, bundle = BACKENDS[w.backend], bundles[w.bundle]
        ref = fp32.get(w.bundle)
        model = bundle_model(bundle, w.backend)
        for b, times in w.times.items():
            if b in w.errors:
                skipped.append({"bundle": w.bundle, "backend": w.backend, "batch": b,
                                "threads": w.threads, "reason": w.errors[b]})  # fmt: skip
                continue
            row = {
                "bundle": w.bundle,
                "backend": w.backend,
                "label": backend.label,
                "precision": backend.precision,
                "device": backend.device,
                "file": str(model.path if model else recorded_checkpoint(bundle)),
                "model": model.name if model else None,
                "file_mb": model_bytes(bundle, w.backend) / 1e6,
                "threads": w.threads,
                "batch": b,
                **_stats(times, b),
                **w.memory,
                "max_abs_logit_diff_vs_ort_fp32": (
                    None if ref is None else float(np.abs(w.logits - ref).max())
                ),
            }
            macs = infos[w.bundle]["macs_per_window"] * b
            row["achieved_gops"] = 2 * macs / (row["p50_ms"] * 1e6)
            peak = roofline.peak_gops(machine, backend.precision, backend.device, w.threads)
            row["peak_gops"] = peak
            row["percent_of_peak"] = 100 * row["achieved_gops"] / peak if peak else None
            rows.append(row)
    p50 = {(r["bundle"], r["backend"], r["threads"], r["batch"]): r["p50_ms"] for r in rows}
    best = {(r["bundle"], r["backend"], r["threads"], r["batch"]): r["min_ms"] for r in rows}
    for r in rows:
        refs = [(r["bundle"], "")] + ([(0, "base_")] if r["bundle"] else [])
        keys = {
            f"{prefix}{name}": (ref_bundle, name, r["threads"], r["batch"])
            for ref_bundle, prefix in refs
            for name in ("ort-fp32", "torch-fp32")
        }
        r["speedup_vs"] = {k: p50[v] / r["p50_ms"] for k, v in keys.items() if v in p50}
        r["best_run_speedup_vs"] = {k: best[v] / r["min_ms"] for k, v in keys.items() if v in p50}
    return {
        "machine": machine,
        "settings": settings,
        "roofline": {
            "cpu": roofline.cpu_peaks(machine),
            "gpu": roofline.gpu_peaks(machine.get("gpu")),
            "gpu_note": roofline.GPU_PEAK_NOTE,
        },
        "bundles": infos,
        "results": rows,
        "skipped": skipped,
    }


def _num(value: float | None, width: int, decimals: int) -> str:
    """`value` right-aligned in `width` columns; "-" where there is none."""
    text = "-" if value is None else f"{value:.{decimals}f}"
    return f"{text:>{width}}"


def table(report: dict) -> list[str]:
    """The human summary: one line per result, then the skipped backends."""
    multi = len(report["bundles"]) > 1
    head = f"{'backend':<16}" + (f"{'bundle':>7}" if multi else "")
    lines = [
        f"{head}{'thr':>4}{'batch':>6}{'p50 ms':>9}{'p99 ms':>9}{'win/s':>9}{'MB':>7}"
        f"{'RSS MB':>8}{'x ORT32':>9}{'x torch':>9}{'% peak':>8}"
    ]
    for r in sorted(report["results"], key=lambda r: (r["bundle"], r["threads"], r["batch"])):
        s = r["speedup_vs"]
        bundle = f"{r['bundle']:>7}" if multi else ""
        lines.append(
            f"{r['backend']:<16}{bundle}{r['threads']:>4}{r['batch']:>6}{r['p50_ms']:>9.3f}"
            f"{r['p99_ms']:>9.3f}{r['throughput_wps']:>9.1f}{r['file_mb']:>7.2f}"
            f"{r['peak_rss_mb']:>8.0f}{_num(s.get('ort-fp32'), 9, 2)}"
            f"{_num(s.get('torch-fp32'), 9, 2)}{_num(r['percent_of_peak'], 8, 1)}"
        )
    for s in report["skipped"]:
        lines.append(f"skipped {s['backend']}: {s['reason']}")
    return lines
