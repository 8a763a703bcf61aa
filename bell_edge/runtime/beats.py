"""QRS detection and heart rate on a stream (numpy, scipy and sleepecg; torch-free).

Beats come from `sleepecg.detect_heartbeats` (a Pan-Tompkins detector with adaptive thresholds
and a compiled core), chosen after measuring it against neurokit2 and wfdb's XQRS on mitdb/100
and cpsc2021 (`benchmarks/results/beat_detectors.md`): as accurate as XQRS, 10-100x cheaper.

A stream is not a whole record. sleepecg learns its thresholds from the first 2 s of whatever it
is given and adapts them beat by beat, so a detector re-run on a short window decides ambiguous
stretches differently from one run over the whole record: 10-s windows split wide QRS complexes
in two and skip low beats that a whole-record run finds. Here each lead keeps its own history:

- sleepecg re-runs on the last `CONTEXT_S` seconds of the best good lead (flag "ok";
  `LEAD_PREFERENCE` order), or on less where the lead has been good for less, and decides the
  beats at least `DECIDE_S` old that it has not decided before: once the stream is long enough,
  with `CONTEXT_S - DECIDE_S` seconds of the lead before them, so the thresholds have settled as
  in a whole-record run. A decided beat is final, and reported, once it is `DELAY_S` old. The
  detector runs when the reported beats have caught up with the decided ones (on a 1-s hop every
  third hop, which saved a fifth of the monitor's cost, `benchmarks/results/beat_decide_ab.md`;
  from 2-s hops on every second or every hop), and at once when the flags of the leads it may
  use change: what is decided but not yet reported is then decided again with the new flags, as
  a detector run at every hop would. On clean signal, and with lead flags changing at random, 3,
  4 and 5 s after a beat decide it as 6 s do (15 min of mitdb/100 and two cpsc2021 records,
  every beat identical). On cpsc2021 lead II (beats only, every hop's window), 60- and 180-s
  contexts gave Se 99.29% / +P 98.50% and 99.27% / 99.00%; votes over 10-s windows gave 98.98% /
  99.03%, and the whole record at once 99.57% / 99.51%.
  Detections in the first `LEARN_S` of a lead's good run (sleepecg's learning phase) are not
  taken, except at the start of the stream.
- A lead is good from the start of the first clean window after a bad one: a flag covers the
  whole window, so the signal of a window with a flag other than "ok" is never used.
- At the stream's end (`update(..., last=True)`, from `StreamingMonitor.finish`) what is
  pending is decided at once, up to `END_S` before the end: there a QRS is cut short. Beats taken
  up to the very end gave 16 false beats in 32 random cuts of mitdb/100 and three cpsc2021
  records; 0.1 s before it none, and 3 beats lying in the last 0.1 s were missed.
- Fusion: the beats of the first good lead, and of the next one where the first is not good (a
  failover). Filling the first lead's long RR gaps from the second was measured on cpsc2021 and
  cost more +P than it gained Se (`benchmarks/results/monitor_rhythm.md`). Two beats are never
  closer than `REFRACTORY_S`. A stretch with no good lead is not analysable: no beats, no heart
  rate, no asystole, never a guess.

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

CONTEXT_S = 180.0  # seconds of each lead the detector re-runs on
MIN_WINDOW_S = 3.0
LEARN_S = 2.0  # sleepecg's learning phase at a window's start
DELAY_S = 6.0  # a beat is final once this old
DECIDE_S = 4.0  # and decided once this old (so the detector runs every third 1-s hop)
REFRACTORY_S = 0.2  # two beats are never closer (300 bpm)
PAD_S = 1.0
END_S = 0.1  # at the stream's end, no beat this close to it (see above)
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
        self.decide = int(round(DECIDE_S * fs))
        self.learn = int(round(LEARN_S * fs))
        self.refractory = int(round(REFRACTORY_S * fs))
        self.end_guard = int(round(END_S * fs))
        self.ring = np.zeros((len(leads), self.context))  # the last CONTEXT_S of every lead
        self.seen = 0  # stream samples received
        self.good_since = np.zeros(len(leads), dtype=np.int64)  # start of each lead's good run
        self.was_bad = np.zeros(len(leads), dtype=bool)
        self.done = 0  # final signal ends here (stream samples)
        self.decided = 0  # the detector has decided up to here
        self.last_decided: int | None = None
        self.pending: deque[tuple[int, int | None]] = deque()  # decided, not yet final
        self.decided_with: list[int] = []  # the leads the last decision could use
        self.last_beat: int | None = None
        self.recent: deque[int] = deque()  # final beats of the last HISTORY_S, analysable
        self.analysable_since = 0  # start of the current analysable run of final signal
        self.leads_used: tuple[str, ...] = ()

    def update(self, x: np.ndarray, good: list[int], end: int, last: bool = False) -> list[int]:
        """New final beats (stream sample indices) from a `(leads, n)` window ending at stream
        sample `end`, of which leads `good` are usable. `last`: the stream ends at `end`, so
        everything up to it is decided and final now, with the signal there is."""
        new = min(end - self.seen, x.shape[1], self.context)
        self.ring[:, np.arange(end - new, end) % self.context] = x[:, x.shape[1] - new :]
        self.seen = end
        for i in range(len(self.leads)):
            if i not in good:
                self.was_bad[i] = True
            elif self.was_bad[i]:
                self.good_since[i], self.was_bad[i] = end - x.shape[1], False
        min_run = MIN_WINDOW_S * self.fs
        usable = [i for i in self.order if i in good and end - self.good_since[i] >= min_run]
        upto = end - self.end_guard if last else end - self.delay
        if usable[:MAX_LEADS] != self.decided_with:  # flags changed: decide again what is pending
            self.pending.clear()
            self.decided, self.last_decided = self.done, self.last_beat
        if upto > self.decided:
            self._decide(usable, end, last)
            self.decided_with = usable[:MAX_LEADS]
        else:
            self.leads_used = tuple(self.leads[i] for i in usable[:1])
        return self._release(upto)

    def _decide(self, usable: list[int], end: int, last: bool = False) -> None:
        """Run the detector and queue the beats (and unanalysable stretches) up to `DECIDE_S`
        before `end` (up to `end` on the `last` window)."""
        upto = end - self.end_guard if last else end - self.decide
        beats, speaks, used = np.zeros(0, dtype=np.int64), upto, []
        for i in usable[:MAX_LEADS]:  # the next lead only where the ones before are not good
            found, since = self._lead_beats(i, end)
            if since < speaks:
                beats = np.concatenate((beats, found[(found >= since) & (found < speaks)]))
                speaks, used = since, [*used, i]
            if speaks <= self.decided:
                break
        self.leads_used = tuple(self.leads[i] for i in used)
        if speaks > self.decided:  # a stretch no lead speaks for: nothing said about it
            self.pending.append((self.decided, speaks))
            self.last_decided = None
        for c in np.sort(beats):
            if max(self.decided, speaks) <= c < upto and (
                self.last_decided is None or c - self.last_decided >= self.refractory
            ):
                self.pending.append((int(c), None))
                self.last_decided = int(c)
        self.decided = upto

    def _release(self, upto: int) -> list[int]:
        """Take what was decided before stream sample `upto`: the beats now final."""
        new_beats = []
        while self.pending and self.pending[0][0] < upto:
            at, analysable_from = self.pending.popleft()
            if analysable_from is None:
                new_beats.append(at)
                self.recent.append(at)
                self.last_beat = at
            else:  # unanalysable from `at` to `analysable_from`: up to `upto` now, the rest later
                if analysable_from > upto:
                    self.pending.appendleft((upto, analysable_from))
                self.analysable_since, self.last_beat = min(analysable_from, upto), None
                self.recent.clear()
        self.done = max(self.done, upto)
        while self.recent and self.recent[0] < self.done - HISTORY_S * self.fs:
            self.recent.popleft()
        return new_beats

    def _lead_beats(self, i: int, end: int) -> tuple[np.ndarray, int]:
        """sleepecg's beats of lead i's good run (stream samples) and where they count from."""
        start = max(int(self.good_since[i]), end - self.context)
        head, tail = start % self.context, end % self.context or self.context
        ring = self.ring[i]
        run = ring[head:tail] if head < tail else np.concatenate((ring[head:], ring[:tail]))
        beats = detect(run, self.fs) + start
        return beats, start + self.learn if start > 0 else 0

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
