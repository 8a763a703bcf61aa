"""Streaming inference for a bedside monitor (numpy + scipy + onnxruntime; torch-free).

`StreamingMonitor` takes chunks of any size at the device's rate and lead set into a ring buffer
of the last `window_s` seconds. Every `hop_s` seconds of signal it emits an `Event`: per-lead
quality, and the model's probabilities and decisions on the buffered window, preprocessed by the
same `preprocess_window` as in training (so an event equals offline preprocessing plus
`Engine.probabilities` on the same samples).

Bad leads ("gap", "off", "saturated", "noisy"; see `quality`) are masked, as are leads the
device lacks. The event carries no probabilities ("no analysis" and a reason) while the buffer is
filling and when fewer than `min_leads` good leads remain (default 2: what a 2-lead Holter gives).
Bad samples (NaN, inf, values beyond 1e9, values that are not numbers) never raise: they are
gaps. Wrong usage (bad rate, unknown lead names, a chunk of another width) raises ValueError.
The rate is fixed for a session: a device that changes rate starts a new monitor.

Decisions use the bundle's thresholds for the monitor's lead set: its own (12-lead) ones on a
device with every model lead, else the lead set's (`lead_set_thresholds`, fitted on val with the
other leads masked). A device whose leads are neither (mitdb's MLII + V5, say) gets
probabilities but no decisions and no AF alarm (`lead_set` is None and `thresholds_note` says
why): thresholds fitted on other leads would flag at random (on mitdb/100, 12-lead thresholds
flag 6 of the demo bundle's 15 classes, AFIB among them, on every hop). The AF alarm uses the
lead set's AFIB alarm threshold (high sensitivity, `alarm_thresholds`) where the bundle has one,
else the AFIB decision threshold.

Classes the training labels never had together (`metrics.exclusive_pairs`, in the bundle's
`training.exclusive_pairs`: NORM with MI, SR with AFIB, ...) are never both positive: of two, the
more probable stays, and `overruled` names the other. The AF alarm reads the AFIB probability,
not the decision, so an overruled AFIB can still raise it.

`finish()` ends the stream: the beats still pending become final with the signal there is.

The rhythm half (`beats`, `alarms`): at every hop, the buffered window's new samples and lead
flags go to `beats.BeatDetector`, which keeps `beats.CONTEXT_S` of every lead and detects beats on
the best good one (final `beats.DELAY_S` after they happen), giving `hr_bpm`
(stated averaging in `beats`) and the alarms of `alarms.AlarmManager`. They run from the first
`beats.MIN_WINDOW_S` seconds on, with one good lead, whether or not the model runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np

from bell_edge.data.leads import canonical_lead
from bell_edge.data.preprocess import preprocess_window
from bell_edge.runtime import quality
from bell_edge.runtime.alarms import Alarm, AlarmConfig, AlarmManager
from bell_edge.runtime.beats import HISTORY_S, BeatDetector
from bell_edge.runtime.engine import Engine

MIN_FS = 50.0  # as data.records
MIN_WINDOW_S = 2.0


@dataclasses.dataclass(frozen=True)
class Event:
    t: float  # stream time at the end of the analysed window, seconds from the first sample
    quality: dict[str, str]  # device lead (canonical name) -> flag
    masked: tuple[str, ...]  # model leads fed as missing: bad or not on the device
    probabilities: dict[str, float] | None  # None: no analysis
    decisions: dict[str, bool] | None  # p >= threshold; None: no analysis, or no thresholds
    reason: str | None  # why there is no analysis
    latency_ms: float  # time spent on this hop (quality, beats, preprocessing, inference, alarms)
    hr_bpm: float | None = None  # None: not enough analysable signal (see beats)
    beats: tuple[float, ...] = ()  # beats that became final at this hop, stream seconds
    alarms: tuple[Alarm, ...] = ()  # active (latched) alarms
    overruled: dict[str, str] = dataclasses.field(default_factory=dict)  # class -> by which

    @property
    def analysed(self) -> bool:
        return self.probabilities is not None

    def to_dict(self) -> dict:
        return {"analysed": self.analysed, **dataclasses.asdict(self)}


class StreamingMonitor:
    """Ring buffer + sliding-window inference over one device stream."""

    def __init__(
        self,
        engine: Engine,
        input_fs: float,
        leads: Sequence[str],
        hop_s: float = 1.0,
        window_s: float = 10.0,
        min_leads: int = 2,
        alarms: AlarmConfig | None = None,
    ):
        bundle = engine.bundle
        self.engine, self.cfg = engine, bundle.preprocess
        self.fs = _positive(input_fs, "input_fs")
        if self.fs < MIN_FS:
            raise ValueError(f"input_fs {self.fs:g} Hz is below {MIN_FS:g} Hz")
        hop_s, window_s = _positive(hop_s, "hop_s"), _positive(window_s, "window_s")
        if not MIN_WINDOW_S <= window_s <= self.cfg.window_s:
            raise ValueError(
                f"window_s {window_s:g} must lie in [{MIN_WINDOW_S:g}, {self.cfg.window_s:g}] s "
                "(the bundle's window)"
            )
        if hop_s > window_s:
            raise ValueError(f"hop_s {hop_s:g} is longer than window_s {window_s:g}")
        self.span = int(round(window_s * self.fs))
        self.hop = int(round(hop_s * self.fs))
        if self.hop < 1:
            raise ValueError(f"hop_s {hop_s:g} is less than one sample at {self.fs:g} Hz")
        if isinstance(leads, str) or not all(isinstance(name, str) for name in leads):
            raise ValueError(f"leads must be a sequence of lead names, got {leads!r}")
        self.width = len(leads)
        self.columns, self.rows, self.leads = _map_leads(list(leads), bundle.lead_order)
        self._select = None if self.columns == list(range(self.width)) else self.columns
        if not 1 <= min_leads <= len(self.columns):
            raise ValueError(
                f"min_leads {min_leads} must lie in [1, {len(self.columns)}], the model leads "
                f"this device gives ({', '.join(self.leads)})"
            )
        self.min_leads = min_leads
        self.lead_set, self.thresholds, alarm_at = _thresholds(
            bundle, self.leads, engine.thresholds
        )
        self.exclusive_pairs = bundle.manifest.get("training", {}).get("exclusive_pairs", [])
        self.thresholds_note = None
        if self.lead_set is None:
            every = ",".join(bundle.lead_order)
            by_set = bundle.manifest.get("lead_set_thresholds", {})
            fitted = {"all model leads", *(k.replace(",", "+") for k in by_set if k != every)}
            self.thresholds_note = (
                f"no decisions and no AF alarm: the bundle has no thresholds fitted for leads "
                f"{'+'.join(self.leads)} (fitted: {', '.join(sorted(fitted))})"
            )
        self.beats = BeatDetector(self.fs, self.leads)
        afib = list(engine.classes).index("AFIB") if "AFIB" in engine.classes else None
        self._afib = afib
        self.alarms = AlarmManager(
            alarms, None if afib is None or alarm_at is None else float(alarm_at[afib])
        )
        if self.alarms.config.af_window_s > HISTORY_S:
            raise ValueError(
                f"af_window_s {self.alarms.config.af_window_s:g} is longer than the "
                f"{HISTORY_S:g} s of beats kept"
            )
        self._buf = np.zeros((len(self.columns), self.span))
        self._bad = np.ones((len(self.columns), self.span), dtype=bool)
        self._pos = 0  # next write position in the ring
        self.samples = 0  # samples received (dropped ones included)
        self._since_hop = 0
        self.finished = False

    def push(self, chunk, start: int | None = None) -> list[Event]:
        """Add `(n_samples, n_leads)` samples; returns the events of the hops they complete.

        `start`, optional, is the index of the chunk's first sample in the stream (a device
        counter): samples skipped since the last chunk are dropped samples (gaps), samples
        already received are ignored.
        """
        if self.finished:
            raise ValueError("the stream has ended (finish was called)")
        x, bad = self._samples(chunk)
        if start is not None:
            if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
                raise ValueError(f"start must be a sample index >= 0, got {start!r}")
            x, bad = x[max(0, self.samples - start) :], bad[max(0, self.samples - start) :]
            missing = max(0, int(start) - self.samples)
        else:
            missing = 0
        events = self._feed(missing, None, None)
        return events + self._feed(len(x), x, bad)

    def finish(self) -> tuple[float, ...]:
        """End the stream: the beats still waiting to become final (the last `beats.DELAY_S`
        and the samples since the last hop), decided now with the signal there is, in stream
        seconds. Events carry no beat after them; the monitor takes no more samples."""
        if self.finished:
            raise ValueError("the stream has already ended")
        self.finished = True
        if self.samples == 0:
            return ()
        x, _, good = self._assessed()
        return self._seconds(self.beats.update(x, good, self.samples, last=True))

    def _assessed(self) -> tuple[np.ndarray, list[str], list[int]]:
        """The buffered samples (up to a window), their lead flags and the good leads."""
        x, bad = self.window()
        have = min(self.samples, self.span)
        x, flags = quality.assess(x[:, -have:], bad[:, -have:], self.fs)
        return x, flags, [i for i, flag in enumerate(flags) if flag == "ok"]

    def _seconds(self, samples: list[int]) -> tuple[float, ...]:
        return tuple(round(b / self.fs, 4) for b in samples)

    def _samples(self, chunk) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's model columns as float64 plus a mask of invalid samples."""
        try:
            x = np.array(chunk, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            x = np.asarray(chunk, dtype=object)
            if x.ndim == 2:
                x = np.frompyfunc(_number, 1, 1)(x).astype(np.float64)
        if x.ndim == 1 and x.size == 0:  # [] : no samples
            x = x.reshape(0, self.width)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(
                f"chunk of shape {x.shape}: expected (n_samples, {self.width}) for leads "
                f"{', '.join(self.leads)}"
            )
        if self._select is not None:  # drop extra leads
            x = x[:, self._select]
        bad = ~(np.abs(x) <= quality.MAX_ABS)  # NaN, inf and out of range
        if bad.any():
            x[bad] = 0.0
        return x, bad

    def _feed(self, n: int, x: np.ndarray | None, bad: np.ndarray | None) -> list[Event]:
        """Write n samples (None: dropped ones) hop by hop, analysing at each hop's end."""
        events, i = [], 0
        while i < n:
            take = min(n - i, self.hop - self._since_hop)
            self._write(
                np.zeros((take, len(self._buf))) if x is None else x[i : i + take],
                np.ones((take, len(self._buf)), bool) if bad is None else bad[i : i + take],
            )
            i += take
            self._since_hop += take
            if self._since_hop == self.hop:
                self._since_hop = 0
                events.append(self._analyse())
        return events

    def _write(self, x: np.ndarray, bad: np.ndarray) -> None:
        n = len(x)  # at most one hop, so at most the span
        head = min(n, self.span - self._pos)  # up to the end of the ring, the rest from 0
        end = self._pos + head
        self._buf[:, self._pos : end], self._bad[:, self._pos : end] = x[:head].T, bad[:head].T
        self._buf[:, : n - head], self._bad[:, : n - head] = x[head:].T, bad[head:].T
        self._pos = (self._pos + n) % self.span
        self.samples += n

    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """The buffered window, oldest sample first: `(leads, span)` values and invalid mask."""
        p = self._pos
        return (
            np.concatenate((self._buf[:, p:], self._buf[:, :p]), axis=1),
            np.concatenate((self._bad[:, p:], self._bad[:, :p]), axis=1),
        )

    def _analyse(self) -> Event:
        t0 = time.perf_counter()
        x, flags, good = self._assessed()
        have = x.shape[1]
        new_beats = self.beats.update(x, good, self.samples)
        model_leads = self.engine.bundle.lead_order
        used = {self.rows[i] for i in good}
        masked = tuple(lead for j, lead in enumerate(model_leads) if j not in used)
        probs = decisions = reason = None
        overruled: dict[str, str] = {}
        if have < self.span:
            reason = f"warming up: {have / self.fs:.1f} of {self.span / self.fs:g} s buffered"
        elif len(good) < self.min_leads:
            bad_leads = ", ".join(f"{self.leads[i]} {f}" for i, f in enumerate(flags) if f != "ok")
            reason = f"too few good leads: {len(good)} of {self.min_leads} needed ({bad_leads})"
        else:
            p = self._infer(x, good)
            if np.isfinite(p).all():
                classes = self.engine.classes
                probs = {c: float(v) for c, v in zip(classes, p, strict=True)}
                if self.thresholds is not None:
                    decisions, overruled = one_of_each_pair(
                        classes, p, self.thresholds, self.exclusive_pairs
                    )
            else:
                reason = "model output is not finite"
        t = self.samples / self.fs
        hr = self.beats.hr_bpm()
        active = self.alarms.update(
            t, hr, self.beats.silent_s(), self.beats.rr_s(self.alarms.config.af_window_s),
            None if probs is None or self._afib is None else probs["AFIB"],
            dict(zip(self.leads, flags, strict=True)), bool(self.beats.leads_used),
        )  # fmt: skip
        return Event(
            t=t,
            quality=dict(zip(self.leads, flags, strict=True)),
            masked=masked,
            probabilities=probs,
            decisions=decisions,
            reason=reason,
            latency_ms=1000 * (time.perf_counter() - t0),
            hr_bpm=hr,
            beats=self._seconds(new_beats),
            alarms=active,
            overruled=overruled,
        )

    def _infer(self, x: np.ndarray, good: list[int]) -> np.ndarray:
        """Preprocess the good leads only (preprocessing is per lead, and a missing lead is zero
        either way), place them in their model rows, and run with the lead mask."""
        leads = self.engine.bundle.input_shape[0]
        rows = [self.rows[i] for i in good]
        window, _ = preprocess_window(x[good], self.fs, self.cfg)
        full = np.zeros((1, leads, window.shape[1]), dtype=np.float32)
        mask = np.zeros((1, leads), dtype=np.float32)
        full[0, rows], mask[0, rows] = window, 1.0
        return self.engine.probabilities(full, mask)[0]


def one_of_each_pair(
    classes: Sequence[str], p: np.ndarray, thresholds: np.ndarray, pairs: list[list[str]]
) -> tuple[dict[str, bool], dict[str, str]]:
    """Decisions `p >= threshold` in which no exclusive pair is positive together: the positive
    classes, from the most probable down, overrule their positive partners (of two classes that
    exclude each other, the more probable is the Bayes choice; thresholds set each class's
    sensitivity, not which of two is likelier). Returns the decisions and {overruled class: the
    class that overruled it}."""
    decisions = {c: bool(v >= th) for c, v, th in zip(classes, p, thresholds, strict=True)}
    probability = dict(zip(classes, p, strict=True))
    overruled = {}
    for c in sorted((c for c, on in decisions.items() if on), key=lambda c: -probability[c]):
        if not decisions[c]:
            continue
        for a, b in pairs:
            other = b if a == c else a if b == c else None
            if other in decisions and decisions[other]:
                decisions[other], overruled[other] = False, c
    return decisions, overruled


def _thresholds(bundle, leads: tuple[str, ...], default: np.ndarray):
    """(lead-set name, decision thresholds, alarm thresholds) for exactly these model leads:
    the lead set's where the bundle has it (its decision thresholds where it has no alarm ones),
    else the bundle's own for every model lead, else (None, None, None)."""
    key = ",".join(lead for lead in bundle.lead_order if lead in leads)
    by_set = bundle.manifest.get("lead_set_thresholds", {})
    if key not in by_set or len(by_set[key]["thresholds"]) != len(default):
        if len(leads) == len(bundle.lead_order):
            return "bundle", default, default
        return None, None, None
    chosen = by_set[key]
    decision = np.asarray(chosen["thresholds"], dtype=np.float32)
    alarm = chosen.get("alarm_thresholds")
    if alarm is None or len(alarm) != len(default):
        return key, decision, decision
    return key, decision, np.asarray(alarm, dtype=np.float32)


def _positive(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def _map_leads(names: list[str], model_leads: Sequence[str]):
    """Device column, model row and canonical name of each device lead the model uses."""
    columns, rows, canon = [], [], []
    for column, name in enumerate(names):
        try:
            lead = canonical_lead(name)
        except KeyError:
            raise ValueError(f"unknown lead name {name!r} in {names}") from None
        if lead is None or lead not in model_leads:
            continue  # extra leads (Frank XYZ, V3R, ...) are dropped
        if lead in canon:
            raise ValueError(f"lead {lead} appears twice in {names}")
        columns.append(column)
        rows.append(list(model_leads).index(lead))
        canon.append(lead)
    if not columns:
        raise ValueError(f"none of the leads {names} is a model lead ({', '.join(model_leads)})")
    return columns, rows, tuple(canon)


def _number(value) -> float:
    """float(value), NaN for what is not a number (a bad sample, not an error)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
