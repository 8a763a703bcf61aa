"""What deciding beats less often saves, and what it changes: an A/B in one process.

Two StreamingMonitors on the same INT8 bundle take the `monitor_cost` stream (12 leads at 500 Hz,
1-s packets) in turns of 60 s, so they share the machine load: A decides beats at every hop
(`BeatDetector.decide` set to its `delay`, the detector before `beats.DECIDE_S`), B as shipped
(decided `DECIDE_S` old, reported `DELAY_S` old: sleepecg runs every third hop). Reports CPU
seconds per ECG-hour of each, and how many hops, beats and alarms differ.

    OMP_NUM_THREADS=1 python benchmarks/beat_decide_ab.py --bundle B
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from monitor_common import DEFAULT_BUNDLE, ROOT, machine, machine_line, write
from monitor_cost import BLOCK_S, FS, stream, take_turns
from wfdb import processing

from bell_edge.config import CANONICAL_LEADS
from bell_edge.runtime.beats import DECIDE_S, DELAY_S
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    m, x = machine(), stream(args.minutes)
    engine = Engine(args.bundle, precision="int8")
    monitors = {name: StreamingMonitor(engine, FS, CANONICAL_LEADS) for name in ("A", "B")}
    monitors["A"].beats.decide = monitors["A"].beats.delay
    cpu, _, events = take_turns(monitors, x, dict.fromkeys(monitors, FS))
    hours = len(x) / FS / 3600
    a, b = events["A"], events["B"]
    beats = {k: np.array([round(t * FS) for e in events[k] for t in e.beats]) for k in events}
    matched = processing.compare_annotations(beats["A"], beats["B"], int(0.15 * FS)).tp
    result = {
        "bundle": str(args.bundle),
        "minutes": args.minutes,
        "machine": m,
        "cpu_s_per_ecg_hour": {k: round(v / hours, 2) for k, v in cpu.items()},
        "hops": len(a),
        "hops_with_other_beats": sum(e.beats != f.beats for e, f in zip(a, b, strict=True)),
        "hops_with_other_hr": sum(e.hr_bpm != f.hr_bpm for e, f in zip(a, b, strict=True)),
        "hops_with_other_alarms": sum(
            [(x.name, x.onset) for x in e.alarms] != [(x.name, x.onset) for x in f.alarms]
            for e, f in zip(a, b, strict=True)
        ),
        "probabilities_identical": [e.probabilities for e in a] == [e.probabilities for e in b],
        "beats": {k: int(len(v)) for k, v in beats.items()},
        "beats_matched_150ms": int(matched),
    }
    print(result)
    r, c = result, result["cpu_s_per_ecg_hour"]
    md = [
        "# Beats decided less often: A/B in one process",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/beat_decide_ab.py --bundle {args.bundle}`. "
        f"Stream: `monitor_cost`'s cpsc2018 loop, {args.minutes:g} min, 12 leads at 500 Hz, "
        f"1-s packets, the two monitors in turns of {BLOCK_S} s.",
        "",
        machine_line(m),
        "",
        "| monitor | CPU s per ECG-hour |",
        "|---|---|",
        f"| A: beats decided at every hop ({DELAY_S:g} s old) | {c['A']:.2f} |",
        f"| B: decided {DECIDE_S:g} s old, reported {DELAY_S:g} s old (shipped) | {c['B']:.2f} |",
        f"| B / A | {c['B'] / c['A']:.3f} |",
        "",
        f"Of {r['hops']} hops, {r['hops_with_other_beats']} report other beats, "
        f"{r['hops_with_other_hr']} another heart rate, {r['hops_with_other_alarms']} other "
        f"alarms (name or onset); model probabilities identical: "
        f"{r['probabilities_identical']}. Beats: A {r['beats']['A']}, B {r['beats']['B']}, "
        f"{r['beats_matched_150ms']} matched within 150 ms. This stream has no reference beats; "
        "`monitor_rhythm.md` scores the shipped detector against annotated records.",
    ]
    write(args.out, "beat_decide_ab", result, md)


if __name__ == "__main__":
    main()
