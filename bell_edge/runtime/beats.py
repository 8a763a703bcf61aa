"""QRS detection and heart rate on a stream (numpy, scipy and sleepecg; torch-free).

Beats come from `sleepecg.detect_heartbeats` (a Pan-Tompkins-style detector with a compiled
core), chosen after measuring it against neurokit2 and wfdb's XQRS on mitdb/100 and cpsc2021
(`benchmarks/results/beat_detectors.md`): as accurate as XQRS or more, and 10-100x cheaper.

`BeatDetector.update` runs at every hop on the last `CONTEXT_S` seconds of the leads whose
window quality is "ok", at most `MAX_LEADS` of them, picked in `LEAD_PREFERENCE` order. Beats
are final once they are `SETTLE_S` old (the detector has then seen what follows them), so each
beat is reported once, at most one hop plus `SETTLE_S` after it happened.

Fusion, where two or more good leads are present: the beats of each hop come from the lead whose
beats in the context are most alike (`template_sqi`: the median correlation of each beat with
the lead's median beat; noise and T waves taken for beats lower it), as a monitor picks its best
lead. With no good lead (all "off", "gap", "saturated" or "noisy"), nothing is reported for
that stretch: no beats, no heart rate, never a guess.

Heart rate (`hr_bpm`), as IEC 60601-2-27 asks a maker to state: 60 divided by the mean of the
RR intervals of the beats in the last `HR_WINDOW_S` seconds (at least `HR_MIN_BEATS` beats, every
RR interval on good leads); None when there are fewer, or when the last `HR_WINDOW_S` seconds
were not all analysable.

Status (measured with /tmp harnesses, not yet a committed benchmark): streamed this way, mitdb/100
gives 2,270 of 2,273 beats with no false one, but on cpsc2021 the short re-detection segments
cost accuracy against sleepecg on the whole record (data_101_6 lead II: 6 missed, 8 false, where
the whole record gives none): sleepecg initializes its thresholds at each segment's start. Not
yet wired into the monitor.
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np

CONTEXT_S = 4.0  # seconds of signal the detector sees at each hop
SETTLE_S = 0.5  # a beat is final once this old
REFRACTORY_S = 0.2  # two beats are never closer (300 bpm)
MAX_LEADS = 2
LEAD_PREFERENCE = ("II", "I", "V5", "III", "aVF", "V2", "V1", "V3", "V4", "V6", "aVL", "aVR")
HR_WINDOW_S = 8.0
HR_MIN_BEATS = 3
SQI_HALF_S = 0.06  # half-width of the beat template


def template_sqi(x: np.ndarray, beats: np.ndarray, fs: float) -> float:
    """Median correlation of each beat (±SQI_HALF_S) with the median beat; 0 below 3 beats."""
    half = int(round(SQI_HALF_S * fs))
    beats = beats[(beats >= half) & (beats < len(x) - half)]
    if len(beats) < 3:
        return 0.0
    segments = x[beats[:, None] + np.arange(-half, half + 1)[None, :]]
    segments = segments - segments.mean(axis=1, keepdims=True)
    template = np.median(segments, axis=0)
    norms = np.linalg.norm(segments, axis=1) * np.linalg.norm(template)
    corr = np.divide(segments @ template, norms, out=np.zeros(len(segments)), where=norms > 0)
    return float(np.median(corr))


def detect(x: np.ndarray, fs: float) -> np.ndarray:
    """sleepecg beats of one lead; none for a flat or non-finite segment."""
    import sleepecg

    if len(x) < fs or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return np.asarray(sleepecg.detect_heartbeats(x, fs), dtype=np.int64)
        except ValueError:  # flat from some sample on
            return np.zeros(0, dtype=np.int64)


class BeatDetector:
    """Beats and heart rate of one stream; fed the monitor's window at every hop."""

    def __init__(self, fs: float, leads: tuple[str, ...]):
        self.fs = float(fs)
        rank = {lead: i for i, lead in enumerate(LEAD_PREFERENCE)}
        self.order = sorted(range(len(leads)), key=lambda i: rank.get(leads[i], len(rank)))
        self.leads = leads
        self.context = int(round(CONTEXT_S * fs))
        self.settle = int(round(SETTLE_S * fs))
        self.refractory = int(round(REFRACTORY_S * fs))
        self.done = 0  # beats before this sample are final
        self.last_beat: int | None = None
        self.recent: deque[int] = deque()  # final beats of the last HR_WINDOW_S
        self.analysable_since = 0  # first sample of the current run of analysable signal
        self.lead_used: str | None = None

    def update(self, x: np.ndarray, good: list[int], end: int) -> list[int]:
        """New final beats (stream sample indices) from a `(leads, n)` window ending at stream
        sample `end`, of which leads `good` are usable."""
        n = x.shape[1]
        upto = end - self.settle
        start = max(end - n, end - self.context)
        picks = [i for i in self.order if i in good][:MAX_LEADS]
        new: list[int] = []
        if not picks:
            self.analysable_since = end  # nothing is said about this stretch
            self.lead_used = None
            self.last_beat = None
        else:
            if self.done < start:
                self.analysable_since = max(self.analysable_since, start)
            seg = x[:, start - (end - n) :]
            best, best_sqi, best_beats = None, -2.0, None
            for i in picks:
                beats = detect(seg[i], self.fs)
                sqi = template_sqi(seg[i], beats, self.fs)
                if sqi > best_sqi:
                    best, best_sqi, best_beats = i, sqi, beats
            self.lead_used = self.leads[best]
            for b in (best_beats + start).tolist():
                if not self.done <= b < upto:
                    continue
                if self.last_beat is not None and b - self.last_beat < self.refractory:
                    continue
                new.append(b)
                self.last_beat = b
        self.done = max(self.done, upto)
        self.recent.extend(new)
        while self.recent and self.recent[0] < upto - HR_WINDOW_S * self.fs:
            self.recent.popleft()
        return new

    def hr_bpm(self) -> float | None:
        """60 / mean RR of the final beats of the last HR_WINDOW_S (see the module doc)."""
        if self.done - self.analysable_since < HR_WINDOW_S * self.fs:
            return None
        beats = [b for b in self.recent if b >= self.analysable_since]
        if len(beats) < HR_MIN_BEATS:
            return None
        return float(60.0 * self.fs / np.mean(np.diff(beats)))

    def rr_s(self) -> np.ndarray:
        """RR intervals (s) of the final beats of the last HR_WINDOW_S on analysable signal."""
        beats = [b for b in self.recent if b >= self.analysable_since]
        return np.diff(np.array(beats, dtype=float)) / self.fs
