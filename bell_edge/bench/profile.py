"""Per-layer time of a bundle's model: where a run spends its time, to choose what to prune or
keep in FP32.

ONNX Runtime backends use its own profiler (`SessionOptions.enable_profiling`): one event per
kernel per run, named after the node of the optimized graph. Fused nodes keep the name of the
node they grew from (with suffixes like `_token_12` that are stripped), so each gets the MACs of
that Conv/Gemm in the bundle's graph. The torch backend wraps every leaf module's forward in a
`torch.profiler.record_function` range named after the module.

Times are per run (mean over the timed runs; warm-up runs are dropped). `total_ms` is the mean
duration of the profiled runs as the profiler measured them; the layers' sum falls short of it
by what runs between kernels (executor bookkeeping, and the profiler's own overhead), reported
as `coverage`. The profiler slows a run down: latency figures come from `bell-edge bench`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.bench import roofline
from bell_edge.bench.backends import bundle_model, recorded_checkpoint, source_checkpoint
from bell_edge.bench.latency import bench_inputs
from bell_edge.errors import InputError
from bell_edge.files import staged_dir, staged_file, tidied_on_failure
from bell_edge.runtime.backends import open_model
from bell_edge.runtime.bundle import Bundle, read_bundle

PROFILE_BACKENDS = ("ort-int8", "ort-fp32", "torch")
TRACE, RESULT, CHART = "trace.json", "profile.json", "layers.png"
TRACE_RUNS = 3  # timed runs kept in trace.json (the figures use them all): traces grow fast
_FUSED_SUFFIX = re.compile(r"(_token_\d+|/duplicated|_kernel_time)+$")
_BRANCH = re.compile(r"branches\.\d+")


def group_name(layer: str) -> str:
    """The same layer in every lead branch: `/branches.3/stem/Conv` -> `/branches.*/stem/Conv`."""
    return _BRANCH.sub("branches.*", base_name(layer))


def base_name(node: str) -> str:
    """The source node of an optimized-graph node: `/a/Conv_token_7` -> `/a/Conv`."""
    return _FUSED_SUFFIX.sub("", node)


def aggregate(events: list[dict], warmup: int) -> tuple[dict[str, dict], list[float], int]:
    """Per-node kernel microseconds summed over the runs after the first `warmup`, the
    durations (us) of those runs and the time stamp the first of them starts at, from ONNX
    Runtime profiler events."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    timed = runs[warmup:]
    if not timed:
        raise InputError(f"profile: {len(runs)} runs recorded, none after {warmup} warm-up")
    start = timed[0]["ts"]
    nodes: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        name = e["name"].removesuffix("_kernel_time")
        entry = nodes.setdefault(name, {"op": e["args"].get("op_name", "?"), "us": 0.0})
        entry["us"] += e["dur"]
    return nodes, [float(r["dur"]) for r in timed], start


def trim(events: list[dict], start: float, runs: int = TRACE_RUNS) -> list[dict]:
    """Trace events from `start` through the first `runs` model runs, and those without a time
    (metadata) or of the session's set-up."""
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run" and e["ts"] >= start)
    stop = starts[runs] if len(starts) > runs else float("inf")
    setup = ("model_loading_uri", "session_initialization")
    return [e for e in events if "ts" not in e or start <= e["ts"] < stop or e["name"] in setup]


def _ort_profile(path: Path, feed: dict, threads: int, warmup: int, runs: int, tmp: Path):
    session = open_model("ort-cpu", path, threads, profile_prefix=str(tmp / "ort"))
    for _ in range(warmup + runs):
        session.run(feed["ecg"], feed["lead_mask"])
    raw = Path(session.session.end_profiling())
    events = json.loads(raw.read_text())
    raw.unlink()
    nodes, run_us, start = aggregate(events, warmup)
    trace = tmp / "timed_trace.json"
    trace.write_text(json.dumps(trim(events, start)))
    batch = len(feed["ecg"])
    macs = {name: m for name, (_, m) in roofline.node_macs(path, batch).items()}
    layers = [
        {"name": name, "op": v["op"], "ms": v["us"] / len(run_us) / 1e3,
         "macs": macs.get(base_name(name), 0)}
        for name, v in nodes.items()
    ]  # fmt: skip
    return layers, float(np.mean(run_us)) / 1e3, trace


@contextlib.contextmanager
def _kineto_notices_dropped() -> Iterator[None]:
    """Kineto (torch's profiler) writes a `USDT:... profiler_start` / `profiler_stop` notice
    straight to file descriptor 2 at every start and stop (no log level silences it): within the
    block fd 2 goes to a file, and afterwards every other line it caught is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.writelines(line for line in lines if not line.startswith("USDT:"))


def _torch_profile(bundle: Bundle, x, m, threads: int, warmup: int, runs: int, tmp: Path):
    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity, profile, record_function

    from bell_edge.models.artifact import load_classifier

    torch.set_num_threads(threads)
    model = load_classifier(source_checkpoint(bundle)).model.eval()
    leaves = {mod: name for name, mod in model.named_modules() if not list(mod.children())}
    macs: dict[str, int] = {}
    ranges: list = []

    def enter(mod, _inputs):
        ranges.append(record_function(leaves[mod]).__enter__())

    def leave(mod, _inputs, out):
        ranges.pop().__exit__(None, None, None)
        if isinstance(mod, nn.Conv1d):
            macs[leaves[mod]] = out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0]
        elif isinstance(mod, nn.Linear):
            macs[leaves[mod]] = out.numel() * mod.in_features

    hooks = [h for mod in leaves for h in (mod.register_forward_pre_hook(enter),
                                           mod.register_forward_hook(leave))]  # fmt: skip
    x, m = torch.from_numpy(x), torch.from_numpy(m)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x, m)
            with _kineto_notices_dropped(), profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(runs):
                    with record_function("model_run"):
                        model(x, m)
    finally:
        for h in hooks:
            h.remove()
    trace = tmp / "torch_trace.json"
    prof.export_chrome_trace(str(trace))
    exported = json.loads(trace.read_text())
    exported["traceEvents"] = trim(exported["traceEvents"], 0)
    trace.write_text(json.dumps(exported))
    ops = {name: type(mod).__name__ for mod, name in leaves.items()}
    us: dict[str, float] = defaultdict(float)
    run_us = []
    for e in prof.events():
        if e.name == "model_run":
            run_us.append(e.cpu_time_total)
        elif e.name in ops:
            us[e.name] += e.cpu_time_total
    layers = [
        {"name": name, "op": ops[name], "ms": t / runs / 1e3, "macs": macs.get(name, 0)}
        for name, t in us.items()
    ]
    return layers, float(np.mean(run_us)) / 1e3, trace


def profile(
    bundle: str | Path | Bundle,
    out: str | Path | None = None,
    backend: str = "ort-int8",
    batch: int = 1,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 50,
    top: int = 15,
    data: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Profile one backend; writes `trace.json` (a Chrome trace of the first `TRACE_RUNS` timed
    runs), `profile.json` and `layers.png` into `out` [default: `profile_out/BUNDLE-BACKEND`]
    atomically, replacing an existing `out` only with `force`. Returns the profile."""
    bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
    out = Path(out) if out else Path("profile_out") / f"{bundle.root.name}-{backend}"
    if backend not in PROFILE_BACKENDS:
        raise InputError(f"--backend {backend}: use one of {', '.join(PROFILE_BACKENDS)}")
    if out.exists() and not force:
        raise InputError(f"{out}: exists (use --force to replace it)")
    if min(batch, threads, runs) < 1 or warmup < 0:
        raise InputError("batch, threads and runs must be positive, warm-up not negative")
    x, m, data_used = bench_inputs(bundle, data, batch, progress)
    with tidied_on_failure(out), staged_dir(out) as tmp:  # no empty profile_out/ left behind
        if backend == "torch":
            file = recorded_checkpoint(bundle)  # _torch_profile verifies it as it loads
            layers, total_ms, trace = _torch_profile(bundle, x, m, threads, warmup, runs, tmp)
        else:
            file = bundle_model(bundle, backend).path
            feed = {"ecg": x, "lead_mask": m}
            layers, total_ms, trace = _ort_profile(file, feed, threads, warmup, runs, tmp)
        trace.rename(tmp / TRACE)
        result = summarize(layers, total_ms, top)
        result.update({
            "bundle": str(bundle.root), "backend": backend, "file": str(file), "batch": batch,
            "threads": threads, "warmup": warmup, "runs": runs, "data": data_used,
        })  # fmt: skip
        (tmp / RESULT).write_text(json.dumps(result, indent=1))
        chart(result, tmp / CHART)
    result["outputs"] = {k: str(out / k) for k in (TRACE, RESULT, CHART)}
    return result


def summarize(layers: list[dict], total_ms: float, top: int) -> dict[str, Any]:
    """Shares, achieved ops/s, the top layers and the per-op-type totals."""
    layers_ms = sum(la["ms"] for la in layers)
    for la in layers:
        la["share"] = la["ms"] / total_ms
        la["gops"] = 2 * la["macs"] / (la["ms"] * 1e6) if la["macs"] and la["ms"] else None
    ranked = sorted(layers, key=lambda la: -la["ms"])
    return {
        "total_ms": total_ms,
        "layers_ms": layers_ms,
        "coverage": layers_ms / total_ms,
        "macs": sum(la["macs"] for la in layers),
        "top": ranked[:top],
        "by_group": _totals(layers, lambda la: group_name(la["name"]), total_ms)[:top],
        "by_op": _totals(layers, lambda la: la["op"], total_ms),
        "layers": ranked,
    }


def _totals(layers: list[dict], key: Callable[[dict], str], total_ms: float) -> list[dict]:
    """Layers summed by `key`, slowest first, with shares and achieved ops/s."""
    sums: dict[str, dict] = {}
    for la in layers:
        entry = sums.setdefault(key(la), {"name": key(la), "op": la["op"], "nodes": 0, "ms": 0.0,
                                          "macs": 0})  # fmt: skip
        entry["nodes"] += 1
        entry["ms"] += la["ms"]
        entry["macs"] += la["macs"]
    for e in sums.values():
        e["share"] = e["ms"] / total_ms
        e["gops"] = 2 * e["macs"] / (e["ms"] * 1e6) if e["macs"] and e["ms"] else None
    return sorted(sums.values(), key=lambda e: -e["ms"])


def chart(result: dict, path: Path) -> None:
    """Bars of the share of a run: the slowest layers (each summed over the lead branches) and
    the op types, coloured by op type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, ops = result["by_group"], result["by_op"]
    palette = plt.get_cmap("tab10")
    colors = {o["name"]: palette(i % 10) for i, o in enumerate(ops)}
    fig, axes = plt.subplots(
        1, 2, figsize=(13, 0.32 * max(len(groups), len(ops)) + 1.6), width_ratios=(2.2, 1)
    )
    panels = (
        (groups, f"slowest layers, summed over branches ({result['backend']}, "
                 f"batch {result['batch']})"),
        (ops, f"by op type; {100 * result['coverage']:.0f}% of the run in kernels"),
    )  # fmt: skip
    for ax, (rows, title) in zip(axes, panels, strict=True):
        rows = rows[::-1]
        ax.barh([_short(r["name"]) for r in rows], [100 * r["share"] for r in rows],
                color=[colors.get(r["op"], "grey") for r in rows])  # fmt: skip
        ax.set_xlabel("% of a run")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def _rows(title: str, rows: list[dict], count: Callable[[dict], str]) -> list[str]:
    lines = [f"{title:<50}{'op':<18}{'n':>4}{'ms':>9}{'share':>8}{'MMACs':>9}{'GOPS':>7}"]
    for r in rows:
        gops = "-" if r["gops"] is None else f"{r['gops']:.1f}"
        op = "" if r["op"] == r["name"] else r["op"]
        lines.append(
            f"{_short(r['name']):<50}{op:<18}{count(r):>4}{r['ms']:>9.3f}"
            f"{100 * r['share']:>7.1f}%{r['macs'] / 1e6:>9.2f}{gops:>7}"
        )
    return lines


def table(result: dict) -> list[str]:
    """The human summary: top layers, the same layers summed over branches, op types."""
    lines = [
        f"{result['backend']} batch {result['batch']}, {result['threads']} thread(s), "
        f"{result['runs']} runs: {result['total_ms']:.3f} ms per profiled run, "
        f"{100 * result['coverage']:.1f}% of it in kernels (profiling slows runs; "
        "latency is for `bell-edge bench`)"
    ]
    lines += _rows("layer", result["top"], lambda r: "1")
    lines += _rows("layer, all lead branches", result["by_group"], lambda r: str(r["nodes"]))
    lines += _rows("op type", result["by_op"], lambda r: str(r["nodes"]))
    if "outputs" in result:
        lines.append(f"trace {result['outputs'][TRACE]}, chart {result['outputs'][CHART]}")
    return lines
