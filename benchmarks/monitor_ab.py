"""The monitor's cost against another git revision's, in one process: an A/B that survives a VM
whose speed moves by 15-30% within minutes.

A is the runtime of `--base` (a revision: its `bell_edge` is unpacked with `git archive` into a
temporary folder and imported as `bell_edge_base`), B the working tree's. Both open the same INT8
bundle and take the `monitor_cost` stream (12 leads at 500 Hz, 1-s packets and hops) in turns of
60 s, so they share the machine load. Reports CPU seconds per ECG-hour of each, their ratio, and
how many hops differ in quality flags, beats, heart rate, alarms and decisions, with the largest
probability difference.

    OMP_NUM_THREADS=1 python benchmarks/monitor_ab.py --base HEAD --bundle B
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from monitor_common import DEFAULT_BUNDLE, ROOT, machine, machine_line, write
from monitor_cost import BLOCK_S, FS, stream, take_turns

from bell_edge.config import CANONICAL_LEADS
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

BASE_PACKAGE = "bell_edge_base"


def import_base(revision: str, folder: Path):
    """`(Engine, StreamingMonitor)` of `revision`'s runtime, renamed so both trees load at once."""
    repo = ROOT.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", revision, "bell_edge"],
                             check=True, capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / BASE_PACKAGE
    (folder / "bell_edge").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bbell_edge\b", BASE_PACKAGE, path.read_text()))
    sys.path.insert(0, str(folder))
    engine = importlib.import_module(f"{BASE_PACKAGE}.runtime.engine")
    monitor = importlib.import_module(f"{BASE_PACKAGE}.runtime.monitor")
    return engine.Engine, monitor.StreamingMonitor


def differences(a: list, b: list) -> dict:
    """How many hops of two event lists differ, field by field."""
    pairs = list(zip(a, b, strict=True))
    both = [(e, f) for e, f in pairs if e.analysed and f.analysed]
    return {
        "hops": len(pairs),
        "quality": sum(e.quality != f.quality for e, f in pairs),
        "analysed": sum(e.analysed != f.analysed for e, f in pairs),
        "beats": sum(e.beats != f.beats for e, f in pairs),
        "hr_bpm": sum(e.hr_bpm != f.hr_bpm for e, f in pairs),
        "alarms": sum(
            [(x.name, x.onset) for x in e.alarms] != [(x.name, x.onset) for x in f.alarms]
            for e, f in pairs
        ),
        "decisions": sum(e.decisions != f.decisions for e, f in both),
        "max_probability_difference": max(
            (abs(p - f.probabilities[c]) for e, f in both for c, p in e.probabilities.items()),
            default=0.0,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="git revision of side A, e.g. HEAD")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    m, x = machine(), stream(args.minutes)
    commit = subprocess.run(["git", "-C", str(ROOT.parent), "rev-parse", args.base],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        BaseEngine, BaseMonitor = import_base(commit, Path(folder))
        monitors = {
            "A": BaseMonitor(BaseEngine(args.bundle, precision="int8"), FS, CANONICAL_LEADS),
            "B": StreamingMonitor(Engine(args.bundle, precision="int8"), FS, CANONICAL_LEADS),
        }
        cpu, _, events = take_turns(monitors, x, dict.fromkeys(monitors, FS))
    hours = len(x) / FS / 3600
    per_hour = {k: round(v / hours, 2) for k, v in cpu.items()}
    result = {
        "base": commit,
        "bundle": str(args.bundle),
        "minutes": args.minutes,
        "machine": m,
        "cpu_s_per_ecg_hour": per_hour,
        "ratio": round(cpu["B"] / cpu["A"], 3),
        "hops_that_differ": differences(events["A"], events["B"]),
    }
    print(result)
    d = result["hops_that_differ"]
    md = [
        "# Monitor cost: the working tree against another revision, in one process",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/monitor_ab.py --base {args.base}` (bundle "
        f"`{args.bundle}`; A = {commit[:10]}, B = the working tree at the time of the commit "
        f"that holds this file). Stream: `monitor_cost`'s, {args.minutes:g} min of 12 leads at "
        f"500 Hz in 1-s packets and hops, the two monitors in turns of {BLOCK_S} s; INT8 on one "
        "thread.",
        "",
        machine_line(m),
        "",
        "| side | CPU s per ECG-hour |",
        "|---|---|",
        f"| A ({commit[:10]}) | {per_hour['A']} |",
        f"| B (working tree) | {per_hour['B']} |",
        f"| B / A | **{result['ratio']}** |",
        "",
        f"Of {d['hops']} hops, these differ between A and B: quality flags {d['quality']}, "
        f"analysed or not {d['analysed']}, beats {d['beats']}, heart rate {d['hr_bpm']}, alarms "
        f"{d['alarms']}, decisions {d['decisions']}; the largest probability difference is "
        f"{d['max_probability_difference']:.2g}.",
        "",
    ]
    write(args.out, "monitor_ab", result, md)


if __name__ == "__main__":
    main()
