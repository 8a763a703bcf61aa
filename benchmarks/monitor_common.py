"""What the monitor benchmarks share: the machine description and the result writer."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bell_edge.bench.machine import describe, summary

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data"
DEFAULT_BUNDLE = Path("/work/exp/demo/bundle")


def machine() -> dict:
    return describe()


def machine_line(m: dict) -> str:
    return (
        f"Machine: {summary(m)}; load average {m['load_average']} at start (the machine was "
        "shared: wall times are inflated, CPU times less so)."
    )


def write(out: Path, name: str, result: dict, markdown: list[str]) -> None:
    """`out/name.json` and `out/name.md`, each written whole (temp + rename)."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=1)), (".md", "\n".join(markdown))):
        tmp = out / f".{name}{suffix}.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, out / f"{name}{suffix}")
    print(f"wrote {out / name}.json and .md")
