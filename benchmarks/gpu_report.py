"""The results of benchmarks/gpu_check.sh: gpu_check.json and gpu_check.md, naming the GPU.

Reads what the run left in its work folder (steps.tsv, the pytest junit file, the runs' summary
and manifest files) and the benchmark report; a step that failed is reported as failed, with
nothing filled in for it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def steps(work: Path) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    for line in (work / "steps.tsv").read_text().splitlines():
        name, rc, seconds, command = line.split("\t", 3)
        if name == "note":
            notes.append(command)
        else:
            rows.append({"step": name, "rc": int(rc), "seconds": int(seconds), "command": command})
    return rows, notes


def pytest_counts(path: Path) -> dict | None:
    try:
        suite = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, skipped = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
    return {"tests": total, "passed": total - failed - errors - skipped, "failed": failed,
            "errors": errors, "skipped": skipped}  # fmt: skip


def nvidia_smi() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def collect(work: Path, bench_file: Path) -> dict:
    from bell_edge.bench.machine import describe

    rows, notes = steps(work)
    pretrain = {k: read_json(work / f"pretrain-{k}" / "summary.json") for k in ("1gpu", "ddp")}
    finetune = read_json(work / "finetune" / "summary.json")
    manifest = read_json(work / "bundle" / "manifest.json")
    return {
        "machine": describe(),
        "gpus": nvidia_smi(),
        "notes": notes,
        "steps": rows,
        "seconds": sum(r["seconds"] for r in rows),
        "pytest_gpu": pytest_counts(work / "pytest_gpu.xml"),
        "pretrain": pretrain,
        "finetune": finetune
        and {
            k: finetune.get(k)
            for k in ("mode", "init", "train_records", "best_epoch", "val", "device")
        },
        "bundle_metrics": manifest and manifest.get("metrics"),
        "bench": read_json(bench_file),
    }


def markdown(r: dict) -> str:
    from bell_edge.bench.latency import table
    from bell_edge.bench.machine import summary

    gpu = r["machine"].get("gpu") or "no GPU"
    lines = [f"# GPU check on {gpu}", "", f"Machine: {summary(r['machine'])}.", ""]
    lines += [f"GPUs (nvidia-smi): {', '.join(r['gpus']) or 'none listed'}.", ""]
    lines += [f"- {n}" for n in r["notes"]] + [""]
    lines += ["| step | exit | seconds |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['rc']} | {s['seconds']} |" for s in r["steps"]]
    lines += ["", f"Total {r['seconds']} s.", ""]
    if r["pytest_gpu"]:
        p = r["pytest_gpu"]
        lines += [f"`pytest -m gpu`: {p['passed']} passed, {p['failed']} failed, "
                  f"{p['errors']} errors, {p['skipped']} skipped.", ""]  # fmt: skip
    for name, s in r["pretrain"].items():
        if s:
            lines.append(
                f"Pretraining ({name}): {s['steps']} steps on {s['world_size']} rank(s), device "
                f"{s['device']}, autocast {s.get('autocast', '?')}, {s['seconds']} s, last "
                f"{s.get('samples_per_s', float('nan')):.0f} windows/s, loss {s['loss']:.4f}."
            )
    if r["finetune"]:
        f = r["finetune"]
        lines.append(f"Fine-tuning: {f['mode']}, {f['train_records']} labeled records, val macro "
                     f"AUROC {f['val']['macro_auroc']:.4f}.")  # fmt: skip
    if r["bench"]:
        lines += ["", "```", *table(r["bench"]), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="gpu_check.sh's work folder")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--bench", type=Path, required=True, help="the bench --out JSON")
    args = parser.parse_args()
    from bell_edge.files import write_json, write_text  # after --help, which stays fast

    report = collect(args.work, args.bench)
    write_json(args.out / "gpu_check.json", report)
    write_text(args.out / "gpu_check.md", markdown(report))
    print(f"{args.out}/gpu_check.md: {report['machine'].get('gpu') or 'no GPU'}")


if __name__ == "__main__":
    main()
