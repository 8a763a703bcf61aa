"""The monitor's rhythm half on real records: beats, hr_bpm, alarms, and faults added to a
real Holter record, which never crash it and never raise a rhythm alarm."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from bell_edge.runtime.alarms import AlarmConfig
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

RHYTHM = {"asystole", "bradycardia", "tachycardia", "atrial_fibrillation"}


@pytest.fixture(scope="module")
def engine(tiny_bundle) -> Engine:
    return Engine(tiny_bundle)


@pytest.fixture(scope="module")
def holter(cpsc2021):
    """60 s of data_21_7: leads I and II, 200 Hz, sinus rhythm about 70 bpm."""
    rec = wfdb.rdrecord(str(cpsc2021 / "data_21_7"), sampto=60 * 200)
    return rec.p_signal.copy(), float(rec.fs)


def stream(engine, x, fs, **kwargs):
    monitor = StreamingMonitor(engine, fs, ["I", "II"], **kwargs)
    events = []
    for i in range(0, len(x), 137):
        events += monitor.push(x[i : i + 137])
    return events


def alarm_names(events) -> set[str]:
    return {a.name for e in events for a in e.alarms}


def test_clean_record_gives_beats_and_heart_rate_and_no_alarm(engine, holter, cpsc2021):
    x, fs = holter
    events = stream(engine, x, fs)
    ann = wfdb.rdann(str(cpsc2021 / "data_21_7"), "atr")
    beats = np.concatenate([e.beats for e in events])
    ref = ann.sample[ann.sample < (60 - 6) * fs] / fs
    assert len(beats) == len(ref) and np.abs(beats - ref).max() < 0.15
    hr = [e.hr_bpm for e in events if e.hr_bpm is not None]
    assert len(hr) >= 40 and 60 < np.median(hr) < 80
    assert alarm_names(events) == set()


def test_finish_makes_the_last_beats_final(engine, holter, cpsc2021):
    x, fs = holter
    monitor = StreamingMonitor(engine, fs, ["I", "II"])
    events = [e for i in range(0, len(x), 137) for e in monitor.push(x[i : i + 137])]
    last = monitor.finish()
    beats = np.concatenate([*(e.beats for e in events), last])
    ref = wfdb.rdann(str(cpsc2021 / "data_21_7"), "atr", sampto=len(x)).sample / fs
    assert len(last) >= 5 and min(last) > max(b for e in events for b in e.beats)
    assert len(beats) == len(ref) and np.abs(beats - ref).max() < 0.15  # to the record's end
    with pytest.raises(ValueError, match="stream has ended"):
        monitor.push(x[:10])


def test_leads_without_fitted_thresholds_give_probabilities_but_no_decisions(engine, mitdb100):
    """MLII + V5 is no lead set of the bundle: thresholds fitted on other leads would flag at
    random, so there are no decisions and no AF alarm; beats and heart rate go on."""
    rec = wfdb.rdrecord(str(mitdb100), sampto=20 * 360)
    monitor = StreamingMonitor(engine, 360.0, ["MLII", "V5"])
    events = monitor.push(rec.p_signal)
    assert monitor.lead_set is None and monitor.alarms.af_threshold is None
    assert "no thresholds fitted for leads II+V5" in monitor.thresholds_note
    analysed = [e for e in events if e.analysed]
    assert analysed and all(e.decisions is None and e.probabilities for e in analysed)
    assert any(e.hr_bpm is not None for e in events)
    two = StreamingMonitor(engine, 200.0, ["I", "II"])  # a fitted lead set
    assert two.lead_set == "I,II" and two.thresholds_note is None


def test_thresholds_are_configurable_and_alarms_carry_onset_priority_reason(engine, holter):
    x, fs = holter
    events = stream(engine, x, fs, alarms=AlarmConfig(brady_bpm=75, tachy_bpm=150))
    alarms = [a for e in events for a in e.alarms if a.name == "bradycardia"]
    assert alarms and alarms[0].priority == "medium" and "< 75" in alarms[0].reason
    assert alarms[0].onset >= 14  # first heart rate: 6 s delay + 8 s of beats


def mains(x, fs):
    t = np.arange(len(x)) / fs
    return x + 0.5 * np.sin(2 * np.pi * 50 * t)[:, None]


def flat(x, fs):
    x = x.copy()
    x[int(20 * fs) : int(40 * fs)] = x[int(20 * fs)]
    return x


def lead_off(x, fs):
    x = x.copy()
    x[int(25 * fs) :, 1] = 0.0
    return x


def nan_bursts(x, fs):
    x = x.copy()
    for start in range(5, 60, 5):
        x[int(start * fs) : int((start + 0.5) * fs)] = np.nan
    return x


def saturated(x, fs):
    lo, hi = np.percentile(x, [20, 80], axis=0)
    return np.clip(x, lo, hi)


@pytest.mark.parametrize("fault", [mains, flat, lead_off, nan_bursts, saturated])
def test_faults_never_crash_nor_raise_a_rhythm_alarm(engine, holter, fault):
    x, fs = holter
    events = stream(engine, fault(x, fs), fs)
    assert len(events) == 60
    assert not alarm_names(events) & RHYTHM
    assert all(e.hr_bpm is None or 55 < e.hr_bpm < 90 for e in events)


def test_flat_line_reports_no_beats_and_a_lead_off_alarm(engine, holter):
    x, fs = holter
    events = stream(engine, flat(x, fs), fs)
    beats = np.concatenate([e.beats for e in events])
    assert not ((beats > 20.5) & (beats < 39.5)).any()
    assert "lead_off" in alarm_names(events)


def test_one_lead_off_mid_record_keeps_the_beats_of_the_other(engine, holter):
    x, fs = holter
    events = stream(engine, lead_off(x, fs), fs)
    beats = np.concatenate([e.beats for e in events])
    assert ((beats > 30) & (beats < 50)).sum() >= 20
    assert "lead_off" in alarm_names(events)


def test_an_af_window_longer_than_the_beats_kept_is_refused(engine):
    with pytest.raises(ValueError, match="af_window_s 40 is longer"):
        StreamingMonitor(engine, 200.0, ["I", "II"], alarms=AlarmConfig(af_window_s=40))


def test_the_af_alarm_takes_the_lead_sets_alarm_threshold():
    from types import SimpleNamespace

    from bell_edge.runtime.monitor import _thresholds

    lead_order = ("I", "II", "III")
    default = np.array([0.5, 0.6], dtype=np.float32)
    sets = {"I,II": {"thresholds": [0.4, 0.7], "alarm_thresholds": [0.1, 0.2]},
            "I,II,III": {"thresholds": [0.3, 0.3]}}  # fmt: skip
    bundle = SimpleNamespace(lead_order=lead_order, manifest={"lead_set_thresholds": sets})
    key, decision, alarm = _thresholds(bundle, ("II", "I"), default)
    assert key == "I,II" and decision.tolist() == pytest.approx([0.4, 0.7])
    assert alarm.tolist() == pytest.approx([0.1, 0.2])
    key, decision, alarm = _thresholds(bundle, ("I", "II", "III"), default)  # no alarm ones
    assert key == "I,II,III" and alarm.tolist() == pytest.approx([0.3, 0.3])
    key, decision, alarm = _thresholds(bundle, ("I",), default)  # no such lead set: none
    assert key is None and decision is None and alarm is None
    bare = SimpleNamespace(lead_order=lead_order, manifest={})  # every model lead: the bundle's
    key, decision, alarm = _thresholds(bare, lead_order, default)
    assert key == "bundle" and decision is default and alarm is default
