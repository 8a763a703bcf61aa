"""Replay a WFDB record through the streaming monitor, as a device would feed it (`bell-edge
monitor`): one hop of samples per push, in real time, N times faster, or as fast as possible.

`annotations` writes `<record>.qrs`, a WFDB annotation file at the record's rate: one `N` per
detected beat, and the rhythm as aux notes on `+` annotations, as MIT-BIH and CPSC 2021 write it:
`(N` where beats start, `(AFIB` at the onset of each AF alarm, `(N` where its condition ended (the
alarm itself latches `clear_s` longer)."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.records import Record, read_record
from bell_edge.errors import InputError
from bell_edge.files import check_file_target, staged_file
from bell_edge.runtime.alarms import AlarmConfig
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import Event, StreamingMonitor

FLAG_COLORS = {"gap": "tab:purple", "off": "tab:red", "saturated": "tab:orange", "noisy": "gold"}


def parse_speed(text: str) -> float | None:
    """`max` -> None (no waiting), else a positive factor of real time."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = float("nan")
    if not speed > 0 or speed == float("inf"):
        raise InputError(f"--speed {text}: expected a positive number or max")
    return speed


def present_leads(record: Record) -> list[str]:
    return [CANONICAL_LEADS[i] for i in np.flatnonzero(record.lead_mask)]


def replay(
    path: str | Path,
    bundle: str | Path,
    speed: float | None = None,
    hop_s: float = 1.0,
    precision: str = "int8",
    plot: str | Path | None = None,
    force: bool = False,
    on_event: Callable[[Event], None] | None = None,
    annotations: str | Path | None = None,
    alarms: AlarmConfig | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict:
    """Stream a record through a StreamingMonitor; returns the summary (events included).

    `alarms`: the alarm thresholds (defaults: `AlarmConfig()`). `on_note` gets, before the first
    event, why the monitor makes no decisions where it makes none."""
    if plot is not None:
        check_file_target(plot, force)
    record = read_record(path, keep_gaps=True)  # NaN runs reach the monitor as gaps
    qrs = None if annotations is None else Path(annotations) / f"{record.record_id}.qrs"
    if qrs is not None and qrs.exists() and not force:
        raise InputError(f"{qrs}: exists (use --force to replace it)")
    if qrs is not None:
        try:
            qrs.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InputError(f"--annotations {annotations}: not a folder") from None
        except OSError as exc:
            raise InputError(f"{qrs.parent}: cannot make the folder ({exc.strerror})") from None
    engine = Engine(bundle, precision=precision)
    leads = present_leads(record)
    try:
        monitor = StreamingMonitor(engine, record.fs, leads, hop_s=hop_s, alarms=alarms)
    except ValueError as exc:
        raise InputError(f"{record.path}: {exc}") from None
    if monitor.thresholds_note and on_note:
        on_note(f"{record.path}: {monitor.thresholds_note}")
    samples = record.signal[record.lead_mask].T
    events: list[Event] = []
    t0 = time.monotonic()
    for start in range(0, len(samples), monitor.hop):
        end = start + monitor.hop
        if speed is not None:  # a device delivers the hop's samples when they are recorded
            time.sleep(max(0.0, t0 + min(end, len(samples)) / record.fs / speed - time.monotonic()))
        for event in monitor.push(samples[start:end]):
            events.append(event)
            if on_event:
                on_event(event)
    beats = [*(b for e in events for b in e.beats), *monitor.finish()]  # the stream's end too
    summary = summarize(record, events, beats, time.monotonic() - t0, speed, precision)
    summary["thresholds"] = monitor.lead_set
    if monitor.thresholds_note:
        summary["note"] = monitor.thresholds_note
    if qrs is not None:
        write_annotations(qrs, record.fs, events, beats, monitor.alarms.config.clear_s)
        summary["annotations"] = str(qrs)
    if plot is not None:
        plot_replay(record, events, beats, hop_s, plot)
        summary["plot"] = str(plot)
    return summary


def alarm_episodes(events: list[Event]) -> list[dict]:
    """Each alarm from the event that raised it to the last that carried it."""
    episodes: list[dict] = []
    open_: dict[str, dict] = {}
    for e in events:
        names = {a.name for a in e.alarms}
        for a in e.alarms:
            if a.name not in open_:
                open_[a.name] = {"name": a.name, "priority": a.priority, "onset": a.onset,
                                 "raised": round(e.t, 3), "reason": a.reason}  # fmt: skip
                episodes.append(open_[a.name])
            open_[a.name]["last"] = round(e.t, 3)
        for name in set(open_) - names:
            del open_[name]
    return episodes


def write_annotations(
    path: Path, fs: float, events: list[Event], beats: list[float], clear_s: float
) -> None:
    """`path` (DIR/<record>.qrs): `beats` (stream seconds) and the events' rhythm changes,
    written with wfdb.wrann."""
    import wfdb

    marks = [(int(round(b * fs)), "N", "") for b in beats]
    if marks:
        marks.append((marks[0][0], "+", "(N"))
    end = int(round(events[-1].t * fs)) - 1 if events else 0
    for ep in alarm_episodes(events):
        if ep["name"] == "atrial_fibrillation":
            marks.append((int(round(ep["onset"] * fs)), "+", "(AFIB"))
            stop = ep["last"] if ep["last"] >= events[-1].t else ep["last"] - clear_s
            marks.append((min(end, int(round(max(stop, ep["onset"]) * fs))), "+", "(N"))
    marks.sort(key=lambda m: (m[0], m[1] != "+"))
    if not marks:  # wfdb writes no empty file: one rhythm mark says nothing was detected
        marks = [(0, "+", "(NOD")]
    sample, symbol, aux = zip(*marks, strict=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        wfdb.wrann(path.stem, "qrs", np.array(sample), list(symbol), aux_note=list(aux), fs=fs,
                   write_dir=tmp)  # fmt: skip
        with staged_file(path) as staged:
            staged.write_bytes((Path(tmp) / path.name).read_bytes())


def summarize(
    record: Record,
    events: list[Event],
    beats: list[float],
    wall_s: float,
    speed: float | None,
    precision: str,
) -> dict:
    analysed = [e for e in events if e.analysed]
    latency = np.array([e.latency_ms for e in events]) if events else np.zeros(1)
    flags: dict[str, Counter] = {}
    for e in events:
        for lead, flag in e.quality.items():
            if flag != "ok":
                flags.setdefault(lead, Counter())[flag] += 1
    classes = list(analysed[0].probabilities) if analysed else []
    decided = [e for e in analysed if e.decisions is not None]
    hr = np.array([e.hr_bpm for e in events if e.hr_bpm is not None])
    return {
        "record": str(record.path),
        "fs": record.fs,
        "leads": present_leads(record),
        "seconds": round(record.seconds, 3),
        "precision": precision,
        "speed": "max" if speed is None else speed,
        "wall_s": round(wall_s, 3),
        "hops": len(events),
        "analysed": len(analysed),
        "no_analysis": dict(Counter(e.reason.split(":")[0] for e in events if not e.analysed)),
        "positive_share": {
            c: round(float(np.mean([e.decisions[c] for e in decided])), 4)
            for c in (classes if decided else [])
        },
        "mean_probability": {
            c: round(float(np.mean([e.probabilities[c] for e in analysed])), 4) for c in classes
        },
        "lead_flags": {lead: dict(c) for lead, c in flags.items()},
        "beats": len(beats),
        "hr_bpm": {
            "hops": int(len(hr)),
            **(
                {
                    "median": round(float(np.median(hr)), 1),
                    "min": round(float(hr.min()), 1),
                    "max": round(float(hr.max()), 1),
                }
                if len(hr)
                else {}
            ),
        },  # fmt: skip
        "alarms": alarm_episodes(events),
        "latency_ms": {
            "p50": round(float(np.percentile(latency, 50)), 3),
            "p99": round(float(np.percentile(latency, 99)), 3),
            "max": round(float(latency.max()), 3),
        },
    }


def event_line(e: Event) -> str:
    """One live line: time, the top classes (* at or above threshold), lead quality, latency."""
    if e.analysed:
        top = sorted(e.probabilities.items(), key=lambda kv: -kv[1])[:3]
        what = "  ".join(
            f"{c} {p:.2f}{'*' if e.decisions and e.decisions[c] else ' '}" for c, p in top
        )
    else:
        what = f"no analysis: {e.reason}"
    bad = [f"{lead} {flag}" for lead, flag in e.quality.items() if flag != "ok"]
    ok = len(e.quality) - len(bad)
    leads = f"{ok}/{len(e.quality)} leads ok" + (f" ({', '.join(bad)})" if bad else "")
    hr = "HR  -- " if e.hr_bpm is None else f"HR {e.hr_bpm:3.0f}"
    alarms = "".join(f" | {a.priority.upper()} {a.name}" for a in e.alarms)
    return f"{e.t:8.1f} s  {hr}  {what:<40} | {leads} | {e.latency_ms:6.1f} ms{alarms}"


def summary_lines(s: dict) -> list[str]:
    lines = [
        f"{s['record']}: {s['seconds']} s at {s['fs']:g} Hz, leads {' '.join(s['leads'])}; "
        f"{s['hops']} hops in {s['wall_s']} s (speed {s['speed']}, {s['precision']})",
        f"analysed {s['analysed']} hops; no analysis: "
        + (", ".join(f"{k} {v}" for k, v in s["no_analysis"].items()) or "none"),
    ]
    if s["positive_share"]:
        lines.append(
            "positive share of analysed hops: "
            + ", ".join(f"{c} {100 * v:.0f}%" for c, v in s["positive_share"].items())
        )
    for lead, counts in s["lead_flags"].items():
        lines.append(f"lead {lead}: " + ", ".join(f"{f} in {n} hops" for f, n in counts.items()))
    hr = s["hr_bpm"]
    lines.append(
        f"{s['beats']} beats; heart rate on {hr['hops']} hops"
        + (f", median {hr['median']} bpm [{hr['min']}, {hr['max']}]" if hr["hops"] else "")
    )
    if "note" in s:
        lines.append(s["note"])
    for a in s["alarms"]:
        lines.append(f"alarm {a['priority']} {a['name']}: onset {a['onset']} s, raised "
                     f"{a['raised']} s, until {a['last']} s ({a['reason']})")  # fmt: skip
    lat = s["latency_ms"]
    lines.append(f"latency per hop: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    for key in ("annotations", "plot"):
        if key in s:
            lines.append(f"{key}: {s[key]}")
    return lines


def plot_replay(
    record: Record,
    events: list[Event],
    beats: list[float],
    hop_s: float,
    out: str | Path,
) -> None:
    """The ECG with lead-quality flags, the probabilities over time and no-analysis spans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leads = present_leads(record)
    x = record.signal[record.lead_mask]
    t = np.arange(x.shape[1]) / record.fs
    fig, (ax_ecg, ax_hr, ax_p) = plt.subplots(
        3, 1, figsize=(14, 5 + 0.5 * len(leads)), sharex=True,
        gridspec_kw={"height_ratios": [max(2, len(leads) // 2), 1.5, 2]},
    )  # fmt: skip
    x = x - np.nanmedian(x, axis=1, keepdims=True)  # NaN: gaps, drawn as breaks
    lo, hi = np.nanpercentile(x, [1, 99], axis=1)
    scale = 1.5 * float(np.nanmedian(hi - lo)) or 1.0
    for i, lead in enumerate(leads):
        trace = np.clip(x[i], -0.75 * scale, 0.75 * scale)  # an artefact stays in its band
        ax_ecg.plot(t, trace - i * scale, lw=0.4, color="black")
        for e in events:
            flag = e.quality.get(lead, "ok")
            if flag != "ok":
                ax_ecg.plot([e.t - hop_s, e.t], [-(i - 0.4) * scale] * 2,
                            color=FLAG_COLORS[flag], lw=3)  # fmt: skip
    ax_ecg.plot(beats, np.full(len(beats), 0.6 * scale), "v", color="tab:blue", ms=3)
    ax_ecg.set_yticks([-i * scale for i in range(len(leads))], leads)
    ax_ecg.set_title(
        f"{record.record_id}: ECG; triangles: beats; bars: quality flags, at the end of each "
        "window",
        loc="left",
    )
    handles = [plt.Line2D([], [], color=c, lw=3, label=f) for f, c in FLAG_COLORS.items()]
    ax_ecg.legend(handles=handles, loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, ncols=4)
    times = np.array([e.t for e in events])
    ax_hr.plot(times, [np.nan if e.hr_bpm is None else e.hr_bpm for e in events], color="black")
    for k, ep in enumerate(alarm_episodes(events)):
        color = {"high": "tab:red", "medium": "tab:orange", "low": "tab:cyan"}[ep["priority"]]
        ax_hr.axvspan(ep["onset"], ep["last"], color=color, alpha=0.25, lw=0)
        at = ax_hr.get_xaxis_transform()
        ax_hr.text(ep["onset"], 1 - 0.12 * (k % 6), ep["name"], transform=at, fontsize=7, va="top")
    ax_hr.set_ylabel("HR (bpm)")
    ax_hr.set_title("heart rate; bands: alarms from onset (red high, orange medium, cyan low)",
                    loc="left", fontsize=9)  # fmt: skip
    analysed = [e for e in events if e.analysed]
    if analysed:
        colors = plt.get_cmap("tab20").colors  # a colour of its own for up to 20 classes
        for k, c in enumerate(analysed[0].probabilities):
            color = colors[k % len(colors)]
            p = [e.probabilities[c] if e.analysed else np.nan for e in events]  # breaks gaps
            ax_p.plot(times, p, color=color, label=c, lw=1)
            pos = [(e.t - hop_s, hop_s) for e in analysed if e.decisions and e.decisions[c]]
            ax_p.broken_barh(pos, (1.03 + 0.05 * k, 0.04), color=color)
    for e in events:
        if not e.analysed:
            ax_p.axvspan(e.t - hop_s, e.t, color="grey", alpha=0.2, lw=0)
    ax_p.set_ylim(0, 1.03 + 0.05 * len(analysed[0].probabilities) if analysed else 1.05)
    ax_p.set_ylabel("probability")
    ax_p.set_xlabel(
        "time (s); grey: no analysis; bars on top: decision positive (one row per class)"
    )
    ax_p.legend(loc="center right", fontsize=7)
    ax_p.set_xlim(0, max(t[-1], times.max() if len(times) else 0))
    fig.tight_layout()
    try:
        with staged_file(out) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
