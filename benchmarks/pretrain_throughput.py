"""Pretraining throughput: samples/s of a full BELL step per encoder layout, BELL vs BYOL.

A step is: augment two views, forward, backward, AdamW step, EMA target update. Also timed:
the BELL loss alone (both symmetrized calls, forward + backward), the augmentation and the EMA
update, each as a share of the step. Writes benchmarks/results/pretrain_throughput.{json,md}.

    python benchmarks/pretrain_throughput.py                    # CPU, 2 threads, batch 64
    python benchmarks/pretrain_throughput.py --device cuda --batch-size 256   # bf16 autocast
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bell_edge.config import AugmentConfig, ModelConfig, to_dict
from bell_edge.models import MultiLeadEncoder, count_macs, count_params
from bell_edge.ssl import Augmenter, BootstrapLearner, bell_loss

CASES = [  # name, method, ModelConfig overrides
    ("bell / separate, modules", "bell", {"layout": "modules"}),
    ("bell / separate, grouped", "bell", {"layout": "grouped"}),
    ("bell / shared (folded)", "bell", {"shared_weights": True}),
    ("byol / separate, modules", "byol", {"layout": "modules"}),
]


def machine(device: torch.device, threads: int) -> dict[str, object]:
    cpu = "unknown"
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            cpu = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_features": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "amx_int8"}),
        "cores_visible": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "threads": threads,
        "python": platform.python_version(),
        "device": str(device),
        "load_average_at_start": os.getloadavg()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def clock(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of fn, device work included."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process) since boot/start."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy, own.user + own.system


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each fn, timed in alternating rounds after alternating warm-up rounds.

    Alternating spreads load that varies over time (a shared machine) over every case alike,
    and the warm-up reaches the peak memory of all cases together before any timing.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            seconds = clock(fn, device)
            if r >= warmup:
                times[name].append(seconds)
    return times


def training_step(
    learner: BootstrapLearner, augment: Augmenter, x: torch.Tensor, mask: torch.Tensor, amp: bool
) -> Callable[[], object]:
    params = [p for p in learner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)

    def step() -> None:
        v1, v2 = augment(x), augment(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = learner(v1, v2, mask)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        learner.update_target(0.996)

    return step


def run(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    amp = device.type == "cuda"
    base = ModelConfig()
    x = torch.randn(args.batch_size, base.n_leads, args.samples, device=device)
    mask = torch.ones(args.batch_size, base.n_leads, dtype=torch.bool, device=device)
    augment = Augmenter(AugmentConfig(), seed=0)
    info = machine(device, args.threads)
    result: dict[str, object] = {
        "machine": info,
        "batch_size": args.batch_size,
        "samples": args.samples,
        "autocast_bf16": amp,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "model": {
            "config": to_dict(base),
            "encoder_params": count_params(MultiLeadEncoder(base)),
            "encoder_params_shared": count_params(
                MultiLeadEncoder(dataclasses.replace(base, shared_weights=True))
            ),
            "encoder_macs_per_window": count_macs(base, args.samples),
        },
    }
    learners = {
        name: BootstrapLearner(dataclasses.replace(base, **overrides), method=method)
        .to(device)
        .train()
        for name, method, overrides in CASES
    }
    steps = {name: training_step(lr, augment, x, mask, amp) for name, lr in learners.items()}
    wall, (busy, own) = time.perf_counter(), cpu_seconds()
    times = interleaved(steps, device, args.warmup, args.steps)
    busy_end, own_end = cpu_seconds()
    others = (busy_end - busy - (own_end - own)) / (time.perf_counter() - wall)
    info["other_processes_cpu_cores"] = round(max(others, 0.0), 2)
    cases = []
    for name, method, _ in CASES:
        median, best = statistics.median(times[name]), min(times[name])
        cases.append(
            {
                "name": name,
                "method": method,
                "layout": learners[name].online.encoder.layout,
                "trainable_params": sum(
                    p.numel() for p in learners[name].parameters() if p.requires_grad
                ),
                "step_s": [round(t, 4) for t in times[name]],
                "step_s_median": round(median, 4),
                "step_s_min": round(best, 4),
                "samples_per_s": round(args.batch_size / median, 2),
                "samples_per_s_best": round(args.batch_size / best, 2),
            }
        )
        print(f"{name:28s} {median * 1e3:9.1f} ms/step {args.batch_size / median:8.1f} samples/s")
    first = CASES[0][0]
    result["shares_of_bell_modules_step"] = parts(
        learners[first], augment, x, mask, statistics.median(times[first])
    )
    result["cases"] = cases
    info["load_average_at_end"] = os.getloadavg()[0]
    return result


def parts(
    learner: BootstrapLearner, augment: Augmenter, x: torch.Tensor, mask: torch.Tensor, step: float
) -> dict[str, dict[str, float]]:
    """Time the BELL loss (both views, forward + backward), augmenting two views, the EMA."""
    device = x.device
    k = learner.predictor[-1].out_features
    p = torch.randn(x.shape[0], x.shape[1], k, device=device, requires_grad=True)
    z = torch.randn(x.shape[0], x.shape[1], k, device=device)

    def loss() -> None:
        total = bell_loss(p, z, mask)[0] + bell_loss(p.flip(0), z, mask)[0]
        total.backward()

    pieces: dict[str, Callable[[], object]] = {
        "bell_loss": loss,
        "augment_two_views": lambda: (augment(x), augment(x)),
        "ema_update": lambda: learner.update_target(0.996),
    }
    out = {}
    for name, times in interleaved(pieces, device, 2, 10).items():
        seconds = statistics.median(times)
        out[name] = {"ms": round(seconds * 1e3, 3), "share_of_step": round(seconds / step, 5)}
    return out


def markdown(r: dict) -> str:
    m, model = r["machine"], r["model"]
    lines = [
        "# Pretraining throughput",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['cpu_features'])}), {m['cores_visible']} cores "
        f"visible, torch {m['torch']}, {m['threads']} threads, device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + f". Other processes used {m['other_processes_cpu_cores']:.2f} cores on average while "
        f"the steps ran (load average {m['load_average_at_start']:.2f} at start, "
        f"{m['load_average_at_end']:.2f} at end): with more than ~0.1, trust the best-step "
        "column over the median.",
        "",
        f"Batch {r['batch_size']}, 12 x {r['samples']} samples, bf16 autocast "
        f"{'on' if r['autocast_bf16'] else 'off'}; {r['warmup_steps']} warm-up then "
        f"{r['timed_steps']} timed rounds, the cases alternating within each round. A step: "
        "augment two views, forward, backward, AdamW, EMA update.",
        "",
        f"Default encoder: {model['encoder_params']:,} parameters with separate lead weights "
        f"({model['encoder_params_shared']:,} shared), "
        f"{model['encoder_macs_per_window'] / 1e6:.1f} M MACs per 12 x {r['samples']} window "
        "(convs; the same for every layout).",
        "",
        "| case | trainable params | ms / step (median) | samples / s (median) | samples / s "
        "(best step) |",
        "|---|---|---|---|---|",
    ]
    for c in r["cases"]:
        lines.append(
            f"| {c['name']} | {c['trainable_params']:,} | {c['step_s_median'] * 1e3:.0f} "
            f"| {c['samples_per_s']:.1f} | {c['samples_per_s_best']:.1f} |"
        )
    lines += ["", "Parts of the BELL (modules) step:", "", "| part | ms | share of step |"]
    lines.append("|---|---|---|")
    for name, v in r["shares_of_bell_modules_step"].items():
        lines.append(f"| {name} | {v['ms']:.2f} | {100 * v['share_of_step']:.2f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pretrain_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "pretrain_throughput.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
