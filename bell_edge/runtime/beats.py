"""QRS detection and heart rate on a stream (numpy, scipy and sleepecg; torch-free).

Beats come from `sleepecg.detect_heartbeats` (a Pan-Tompkins detector with adaptive thresholds
and a compiled core), chosen after measuring it against neurokit2 and wfdb's XQRS on mitdb/100
and cpsc2021 (`benchmarks/results/beat_detectors.md`): as accurate as XQRS, 10-100x cheaper.

A stream is not a whole record. sleepecg learns its thresholds from the first 2 s of whatever it
is given, so a detector re-run on the last seconds at each hop decides ambiguous stretches
differently from one run over the whole record (on cpsc2021 lead II, 10-s windows lose two
points of +P against the whole record). Here every hop's window is one *vote*:

- At each hop, sleepecg runs on the last `CONTEXT_S` seconds of each good lead (flag "ok"), at
  most `MAX_LEADS` of them in `LEAD_PREFERENCE` order. Its detections count between the end of
  its learning phase (`LEARN_S` after the window's start) and `SETTLE_S` before the window's end.
- A beat is final once it is `DELAY_S` old: the detections within `MATCH_S` of each other form
  one candidate, kept when at least `MIN_VOTES` windows covered it and a share `NEED` of them,
  over all good leads (the fusion), found it. A beat is reported once; two are never closer than
  `REFRACTORY_S`.
- A stretch covered by fewer than `MIN_VOTES` windows (no good lead: "off", "gap", "saturated",
  "noisy") is not analysable: no beats, no heart rate, no asystole, never a guess.

Heart rate (`hr_bpm`; IEC 60601-2-27 asks the maker to state its averaging): 60 divided by the
mean of the RR intervals of the final beats in the last `HR_WINDOW_S` seconds of final signal,
all of it analysable, with at least `HR_MIN_BEATS` beats; None otherwise. Final signal lags the
stream by `DELAY_S`, so the heart rate of an event at time t describes [t - 14, t - 6] s.

sleepecg 0.6.0's C core reads `2 * fs` samples for its learning phase whatever the input's
length, and sizes its RR buffer one short for beats at every refractory period; windows shorter
than `MIN_WINDOW_S` are never given to it, and each is padded with `PAD_S` of zeros (removed
from the output) so that the buffer has room.
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np

CONTEXT_S = 10.0  # seconds of signal the detector sees at each hop
MIN_WINDOW_S = 3.0
LEARN_S = 2.0  # sleepecg's learning phase at a window's start
SETTLE_S = 0.5  # detections this close to a window's end do not vote
DELAY_S = 6.0  # a beat is final once this old
MATCH_S = 0.075  # detections of one beat in different windows or leads
NEED = 2 / 3
MIN_VOTES = 2
REFRACTORY_S = 0.2  # two beats are never closer (300 bpm)
PAD_S = 1.0
MAX_LEADS = 2
LEAD_PREFERENCE = ("II", "I", "V5", "III", "aVF", "V2", "V1", "V3", "V4", "V6", "aVL", "aVR")
HR_WINDOW_S = 8.0
HR_MIN_BEATS = 3
HISTORY_S = 30.0  # final beats kept for rhythm analysis


def detect(x: np.ndarray, fs: float) -> np.ndarray:
    """sleepecg beats of one lead's window; none for a short, flat or non-finite one."""
    import sleepecg

    if len(x) < MIN_WINDOW_S * fs or not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([x, np.zeros(int(PAD_S * fs))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            beats = np.asarray(sleepecg.detect_heartbeats(padded, fs), dtype=np.int64)
        except ValueError:  # flat from some sample on
            return np.zeros(0, dtype=np.int64)
    return beats[beats < len(x)]


class BeatDetector:
    """Beats and heart rate of one stream; fed the monitor's window at every hop."""

    def __init__(self, fs: float, leads: tuple[str, ...]):
        self.fs = float(fs)
        rank = {lead: i for i, lead in enumerate(LEAD_PREFERENCE)}
        self.order = sorted(range(len(leads)), key=lambda i: rank.get(leads[i], len(rank)))
        self.leads = leads
        self.context = int(round(CONTEXT_S * fs))
        self.delay = int(round(DELAY_S * fs))
        self.match = int(round(MATCH_S * fs))
        self.refractory = int(round(REFRACTORY_S * fs))
        self.votes: deque[tuple[int, int, int, np.ndarray]] = deque()  # (lo, hi, end, beats)
        self.done = 0  # final signal ends here (stream samples)
        self.last_beat: int | None = None
        self.recent: deque[int] = deque()  # final beats of the last HISTORY_S, analysable
        self.analysable_since = 0  # start of the current analysable run of final signal
        self.leads_used: tuple[str, ...] = ()

    def update(self, x: np.ndarray, good: list[int], end: int) -> list[int]:
        """New final beats (stream sample indices) from a `(leads, n)` window ending at stream
        sample `end`, of which leads `good` are usable."""
        start = end - min(x.shape[1], self.context)
        picks = [i for i in self.order if i in good][:MAX_LEADS]
        self.leads_used = tuple(self.leads[i] for i in picks)
        learn = int(round(LEARN_S * self.fs)) if start > 0 else 0
        for i in picks:
            beats = detect(x[i, start - end :], self.fs)
            if len(x[i, start - end :]) >= MIN_WINDOW_S * self.fs:
                hi = end - int(round(SETTLE_S * self.fs))
                self.votes.append((start + learn, hi, end, beats + start))
        return self._finalize(end - self.delay)

    def _covering(self, c: int) -> list[np.ndarray]:
        """Detections of the windows that covered sample c and were final for it."""
        return [b for lo, hi, end, b in self.votes if lo <= c < hi and end <= c + self.delay]

    def _finalize(self, upto: int) -> list[int]:
        if upto <= self.done:
            return []
        if min(len(self._covering(self.done)), len(self._covering(upto - 1))) < MIN_VOTES:
            self.analysable_since, self.last_beat = upto, None  # nothing said about it
            self.recent.clear()
        dets = [b[(b >= self.done - self.match) & (b < upto + self.match)] for *_, b in self.votes]
        candidates = np.sort(np.concatenate(dets)) if dets else np.zeros(0, np.int64)
        new: list[int] = []
        for cluster in np.split(candidates, np.flatnonzero(np.diff(candidates) > self.match) + 1):
            if not len(cluster):
                continue
            c = int(np.median(cluster))
            if not (self.done <= c < upto and c >= self.analysable_since):
                continue
            covering = self._covering(c)
            found = sum(bool(len(b) and np.abs(b - c).min() <= self.match) for b in covering)
            if len(covering) < MIN_VOTES or found < NEED * len(covering):
                continue
            if self.last_beat is not None and c - self.last_beat < self.refractory:
                continue
            new.append(c)
            self.last_beat = c
        self.done = upto
        while self.votes and self.votes[0][1] < upto - self.match:
            self.votes.popleft()
        self.recent.extend(new)
        while self.recent and self.recent[0] < upto - HISTORY_S * self.fs:
            self.recent.popleft()
        return new

    def hr_bpm(self) -> float | None:
        """60 / mean RR of the final beats of the last HR_WINDOW_S (see the module doc)."""
        if self.done - self.analysable_since < HR_WINDOW_S * self.fs:
            return None
        beats = [b for b in self.recent if b >= self.done - HR_WINDOW_S * self.fs]
        if len(beats) < HR_MIN_BEATS:
            return None
        return float(60.0 * self.fs / np.mean(np.diff(beats)))

    def rr_s(self, seconds: float = HISTORY_S) -> np.ndarray:
        """RR intervals (s) of the final beats of the last `seconds` of analysable signal."""
        beats = [b for b in self.recent if b >= self.done - seconds * self.fs]
        return np.diff(np.asarray(beats, dtype=float)) / self.fs

    def silent_s(self) -> float | None:
        """Seconds of analysable final signal since the last beat (since analysable signal began
        where there is none yet); None when the final signal is not analysable."""
        if self.done <= self.analysable_since:
            return None
        since = self.analysable_since if self.last_beat is None else self.last_beat
        return (self.done - since) / self.fs
