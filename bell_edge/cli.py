"""The `bell-edge` command line: parse, call, print. No logic of its own.

Exit codes: 0 success, 1 a check that failed (an accuracy gate), 2 bad input (one line, no
traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bell_edge.errors import CheckFailed, InputError


class _Group(click.Group):
    """A click group that turns our error types into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except CheckFailed as exc:
            click.echo(f"failed: {exc}", err=True)
            ctx.exit(1)


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bell-edge")
def main() -> None:
    """BELL 12-lead ECG models: pretrain, fine-tune, compress, deploy to a bedside monitor."""


@main.group(cls=_Group)
def data() -> None:
    """Look at ECG folders and records; prepare the preprocessed cache."""


@data.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def data_inspect(path: Path, as_json: bool) -> None:
    """Summarize a dataset folder, or one record (path with or without .hea)."""
    from tqdm import tqdm

    from bell_edge.data.inspect import inspect_folder, inspect_record

    if path.is_dir():
        progress = None if as_json else _progress(tqdm, "reading")
        report = inspect_folder(path, progress=progress)
        if as_json:
            _print_json(report)
        else:
            _show_folder(report)
        if report["readable"] == 0:
            raise InputError(f"{path}: none of its {report['records']} records is readable")
        return
    if not path.exists() and not path.with_suffix(".hea").exists():
        raise InputError(f"{path}: no such file or folder")
    report = inspect_record(path)
    if as_json:
        _print_json(report)
        return
    click.echo(f"record   {report['record']}")
    click.echo(f"rate     {report['fs']:g} Hz, {report['samples']} samples, {report['seconds']} s")
    click.echo(f"leads    {' '.join(report['source_leads'])}")
    click.echo(f"present  {' '.join(report['leads_present'])} (canonical 12-lead order)")
    click.echo(f"units    {', '.join(report['units'])}")
    sig = report["signal"]
    click.echo(f"signal   min {sig['min']:.3f}, max {sig['max']:.3f}, mean std {sig['mean_std']:.3f}")
    for line in report["comments"][:8]:
        click.echo(f"# {line}")


def _progress(tqdm, desc: str):
    def wrap(iterable, total):
        return tqdm(iterable, total=total, desc=desc, unit="rec", leave=False, file=sys.stderr)

    return wrap


def _show_folder(r: dict) -> None:
    click.echo(f"{r['path']}: layout {r['layout']}, {r['records']} records, {r['readable']} readable")
    click.echo("splits   " + ", ".join(f"{k} {v}" for k, v in r["splits"].items()))
    click.echo("rates    " + ", ".join(f"{k} Hz x{v}" for k, v in r["rates_hz"].items()))
    click.echo("leads    " + ", ".join(f"{k} leads x{v}" for k, v in r["leads"].items()))
    s = r["seconds"]
    click.echo(f"seconds  min {s['min']:.1f}, median {s['median']:.1f}, max {s['max']:.1f}")
    if r["labels_by_split"]:
        classes = r["classes"]
        shown = classes if len(classes) <= 8 else classes[:8]
        click.echo("labels   " + "".join(f"{c:>10}" for c in ["split", *shown]))
        for split, counts in r["labels_by_split"].items():
            click.echo("         " + "".join(f"{v:>10}" for v in [split, *(counts[c] for c in shown)]))
        if len(classes) > len(shown):
            click.echo(f"         ... {len(classes) - len(shown)} more classes (see --json)")
    for reason, count in r["dropped_by_layout"].items():
        if count:
            click.echo(f"dropped  {count} records: {reason}")
    for p in r["problems"][:20]:
        click.echo(f"problem  {p['error']}")
    if len(r["problems"]) > 20:
        click.echo(f"problem  ... {len(r['problems']) - 20} more (see --json)")


@data.command("prepare")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Cache folder.")
@click.option("--fs", type=int, default=100, show_default=True, help="Target rate, Hz.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Window length.")
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option("--force", is_flag=True, help="Replace a cache of other data or settings.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def data_prepare(path, out, fs, seconds, workers, force, as_json) -> None:
    """Preprocess a dataset once into a memory-mapped cache (a no-op when nothing changed)."""
    from bell_edge.config import PreprocessConfig
    from bell_edge.data.cache import prepare

    cfg = PreprocessConfig(fs=fs, window_s=seconds)
    result = prepare(path, out, cfg, workers=workers, force=force, progress=not as_json)
    cache = result.cache
    summary = {
        "cache": str(cache.root),
        "reused": result.reused,
        "windows": len(cache),
        "records": cache.meta["records"],
        "shape": cache.meta["shape"],
        "splits": {s: int((cache.splits == s).sum()) for s in sorted(set(cache.splits))},
        "skipped": result.skipped,
        "preprocess_hash": cache.meta["preprocess_hash"],
    }
    if as_json:
        _print_json(summary)
        return
    verb = "unchanged, reused" if result.reused else "written"
    click.echo(f"{cache.root}: {verb}; {summary['windows']} windows of {summary['records']} records")
    for item in result.skipped:
        click.echo(f"skipped  {item['error']}")


if __name__ == "__main__":
    main()
