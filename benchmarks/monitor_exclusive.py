"""How often the monitor would flag two classes the training labels never had together.

    python benchmarks/monitor_exclusive.py --bundle B --out benchmarks/results

Replays the 18 cpsc2021 Holter records (leads I+II) and the 10 cpsc2018 records (12 leads)
through the monitor's replay (1-s hops) and counts, over the analysed hops with decisions, those
where both classes of an exclusive pair (`training.exclusive_pairs` of the bundle) are at or
above their thresholds, which the monitor now resolves to one (`Event.overruled`), and which
class each pair kept.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from monitor_common import DATA, machine, machine_line, write

from bell_edge.replay import replay
from bell_edge.runtime.engine import Engine


def decided_events(bundle: Path, record: Path) -> list:
    events = []
    replay(record, bundle, speed=None, on_event=events.append)
    return [e for e in events if e.decisions is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    engine = Engine(args.bundle)
    pairs = engine.bundle.manifest.get("training", {}).get("exclusive_pairs", [])
    if not pairs:
        raise SystemExit(f"{args.bundle}: no exclusive_pairs (fine-tuned before the field)")
    records = sorted((DATA / "cpsc2021").glob("*.hea")) + sorted((DATA / "cpsc2018").glob("*.hea"))
    rows, hops, both, kept = [], 0, Counter(), Counter()
    for hea in records:
        events = decided_events(args.bundle, hea.with_suffix(""))
        above = [{c for c, on in e.decisions.items() if on} | set(e.overruled) for e in events]
        record_both = Counter(
            f"{a}/{b}" for hop in above for a, b in pairs if a in hop and b in hop
        )  # fmt: skip
        for e in events:
            kept.update(f"{winner} over {loser}" for loser, winner in e.overruled.items())
            assert not any(e.decisions[a] and e.decisions[b] for a, b in pairs)
        hops += len(events)
        both.update(record_both)
        rows.append({"record": f"{hea.parent.name}/{hea.stem}", "hops": len(events),
                     "both_above": dict(record_both)})  # fmt: skip
    result = {"bundle": str(args.bundle), "pairs": pairs, "hops": hops,
              "both_above": dict(both), "kept": dict(kept), "records": rows,
              "machine": machine()}  # fmt: skip
    any_both = sum(1 for r in rows if r["both_above"])
    md = [
        "# Exclusive classes on the monitor (one of each pair)",
        "",
        "`python benchmarks/monitor_exclusive.py --bundle B --out benchmarks/results`",
        "",
        f"Bundle: `{args.bundle}`. {machine_line(result['machine'])}",
        "",
        f"Pairs the bundle's training labels never had together: "
        f"{', '.join('/'.join(p) for p in pairs)}.",
        "",
        f"Over {hops} analysed 1-s hops of {len(records)} records (cpsc2021 leads I+II, "
        f"cpsc2018 12 leads), both classes of a pair were at or above their thresholds on:",
        "",
        "| pair | hops | share |",
        "|---|---|---|",
        *[f"| {p} | {n} | {100 * n / max(hops, 1):.1f}% |" for p, n in both.most_common()],
        "",
        f"{any_both} of {len(records)} records had such hops. The monitor now keeps the class "
        "further above its threshold in log-odds and names the other as overruled: "
        + (", ".join(f"{k} {n} times" for k, n in kept.most_common()) or "none")
        + ".",
    ]
    write(args.out, "monitor_exclusive", result, md)


if __name__ == "__main__":
    main()
