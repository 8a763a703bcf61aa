"""Bedside alarms from beats, heart rate, the model's AFIB probability and lead quality (numpy).

Every alarm has a name, a priority, an onset (stream seconds) and a reason. It is raised when its
condition has held for its debounce time and latches: it stays active until the condition has
been clear for `AlarmConfig.clear_s` seconds (10 s by default), then ends.

- `asystole` (high): no beat for `asystole_s` (4 s) of analysable signal on good leads.
- `bradycardia` / `tachycardia` (medium): `hr_bpm` below `brady_bpm` (50) or above
  `tachy_bpm` (120), on analysable signal only.
- `atrial_fibrillation` (medium): RR irregularity and the model together, for `af_on_s` (10 s):
  the irregularity of the last `af_window_s` (20 s) of RR intervals (`irregularity`: median
  |RR difference| / median RR at the most regular of lags 1-3) at least `af_irregularity`
  (0.056: the highest Youden's J for AFIB on the PTB-XL train split, 0.0565, rounded down;
  `benchmarks/results/af_irregularity.md`; one ectopic beat moves two of ~20 differences and not
  their median), and the mean AFIB probability of the model over the
  last `af_prob_hops` analysed hops at least the bundle's AFIB alarm threshold for the monitor's
  leads (see `monitor`). The window and the debounce keep the time to alarm near 20 s: the
  median turns once half the window is AF. Needs a bundle with an AFIB class and `af_min_beats`
  RR intervals; never on unanalysable signal.
- `lead_off` (low, technical): a device lead flagged "off" for `lead_off_s` (2 s).
- `no_signal` (medium, technical): no lead good enough for beats for `lead_off_s`.
"""

from __future__ import annotations

import dataclasses
from statistics import median

import numpy as np

IRREGULARITY_LAGS = 3
PRIORITY = {
    "asystole": "high",
    "bradycardia": "medium",
    "tachycardia": "medium",
    "atrial_fibrillation": "medium",
    "no_signal": "medium",
    "lead_off": "low",
}


@dataclasses.dataclass(frozen=True)
class AlarmConfig:
    brady_bpm: float = 50.0
    tachy_bpm: float = 120.0
    asystole_s: float = 4.0
    af_irregularity: float = 0.056
    af_window_s: float = 20.0
    af_min_beats: int = 12
    af_prob_hops: int = 10
    af_on_s: float = 10.0
    lead_off_s: float = 2.0
    clear_s: float = 10.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"alarm setting {field.name} must be a positive number")
        if self.brady_bpm >= self.tachy_bpm:
            raise ValueError("alarm setting brady_bpm must be below tachy_bpm")


@dataclasses.dataclass(frozen=True)
class Alarm:
    name: str
    priority: str
    onset: float  # stream seconds at which the condition began
    reason: str


@dataclasses.dataclass
class _State:
    since: float | None = None  # condition true since
    clear_since: float | None = None  # condition false since (while latched)
    alarm: Alarm | None = None


def irregularity(rr: np.ndarray, lags: int = IRREGULARITY_LAGS) -> float:
    """RR irregularity at every lag: the least over lags k = 1..`lags` of
    median |RR[i] - RR[i-k]| / median RR. AF is irregular at every lag; bigeminy, trigeminy and
    2:1 / 3:2 block repeat at lag 2 or 3, and sinus arrhythmia changes smoothly at lag 1."""
    rr = np.asarray(rr, dtype=float)
    ks = range(1, min(lags, len(rr) - 1) + 1)
    # statistics.median equals np.median here, without its overhead on a few dozen values
    spread = min(median(np.abs(rr[k:] - rr[:-k]).tolist()) for k in ks)
    return float(spread / median(rr.tolist()))


class AlarmManager:
    def __init__(self, config: AlarmConfig | None = None, af_threshold: float | None = None):
        self.config = config or AlarmConfig()
        self.af_threshold = af_threshold  # None: the bundle has no AFIB class
        self.states = {name: _State() for name in PRIORITY}
        self.afib: list[float] = []

    def update(
        self,
        t: float,
        hr_bpm: float | None,
        silent_s: float | None,
        rr_s: np.ndarray,
        afib_probability: float | None,
        quality: dict[str, str],
        beats_possible: bool,
    ) -> tuple[Alarm, ...]:
        """The active alarms at stream time t (after one hop)."""
        cfg = self.config
        if afib_probability is not None:
            self.afib = (self.afib + [afib_probability])[-cfg.af_prob_hops :]
        off = [lead for lead, flag in quality.items() if flag == "off"]
        conditions = {
            "asystole": (silent_s is not None and silent_s >= cfg.asystole_s,
                         f"no beat for {silent_s or 0:.1f} s", 0.0),
            "bradycardia": (hr_bpm is not None and hr_bpm < cfg.brady_bpm,
                            f"heart rate {hr_bpm or 0:.0f} bpm < {cfg.brady_bpm:g}", 0.0),
            "tachycardia": (hr_bpm is not None and hr_bpm > cfg.tachy_bpm,
                            f"heart rate {hr_bpm or 0:.0f} bpm > {cfg.tachy_bpm:g}", 0.0),
            "atrial_fibrillation": (*self._af(rr_s), cfg.af_on_s),
            "lead_off": (bool(off), f"lead off: {', '.join(off)}", cfg.lead_off_s),
            "no_signal": (not beats_possible, "no lead good enough for beat detection",
                          cfg.lead_off_s),
        }  # fmt: skip
        if conditions["asystole"][0]:  # the onset: the last beat plus asystole_s
            onset = t - silent_s + cfg.asystole_s
            self.states["asystole"].since = min(self.states["asystole"].since or onset, onset)
        return tuple(
            alarm
            for name, (active, reason, debounce) in conditions.items()
            if (alarm := self._step(name, t, active, reason, debounce)) is not None
        )

    def _af(self, rr: np.ndarray) -> tuple[bool, str]:
        cfg = self.config
        if self.af_threshold is None or len(rr) < cfg.af_min_beats or not self.afib:
            return False, ""
        p = float(np.mean(self.afib))
        if p < self.af_threshold:  # the irregularity (four medians) only where it can matter
            return False, ""
        irr = irregularity(rr)
        return (irr >= cfg.af_irregularity,
                f"RR irregularity {irr:.2f} >= {cfg.af_irregularity:g} and AFIB probability "
                f"{p:.2f} >= {self.af_threshold:.2f}")  # fmt: skip

    def _step(self, name: str, t: float, active: bool, reason: str, debounce: float):
        s = self.states[name]
        if active:
            s.since = t if s.since is None else s.since
            s.clear_since = None
            if s.alarm is None and t - s.since >= debounce:
                s.alarm = Alarm(name, PRIORITY[name], round(s.since, 3), reason)
            elif s.alarm is not None:
                s.alarm = dataclasses.replace(s.alarm, reason=reason)
        else:
            s.since = None
            if s.alarm is not None:
                s.clear_since = t if s.clear_since is None else s.clear_since
                if t - s.clear_since >= self.config.clear_s:
                    s.alarm, s.clear_since = None, None
        return s.alarm
