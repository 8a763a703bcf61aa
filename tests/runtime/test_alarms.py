"""AlarmManager: onset, priority, reason, debounce and latching, on scripted inputs."""

from __future__ import annotations

import numpy as np
import pytest

from bell_edge.runtime.alarms import AlarmConfig, AlarmManager, irregularity

OK = {"I": "ok", "II": "ok"}
REGULAR = np.full(30, 0.8)


def run(manager, seconds, hr=75.0, silent=0.3, rr=REGULAR, afib=0.0, quality=OK, start=0):
    """Names of the active alarms after each 1-s hop."""
    return [
        {a.name: a for a in manager.update(t, hr, silent, rr, afib, quality, True)}
        for t in range(start, start + seconds)
    ]


def test_bradycardia_raises_at_once_and_latches_until_clear_for_clear_s():
    m = AlarmManager(AlarmConfig(clear_s=10))
    assert run(m, 5) == [{}] * 5
    low = run(m, 3, hr=42.0, start=5)
    alarm = low[0]["bradycardia"]
    assert (alarm.onset, alarm.priority) == (5, "medium") and "42 bpm < 50" in alarm.reason
    after = run(m, 12, start=8)
    assert all("bradycardia" in a for a in after[:10]) and "bradycardia" not in after[10]


def test_tachycardia_threshold_is_configurable():
    assert "tachycardia" in run(AlarmManager(), 1, hr=125.0)[0]
    assert run(AlarmManager(AlarmConfig(tachy_bpm=130)), 1, hr=125.0) == [{}]


def test_asystole_onset_is_the_last_beat_plus_4_s():
    m = AlarmManager()
    events = [m.update(10.0, None, 5.5, REGULAR, None, OK, True)]
    (alarm,) = events[0]
    assert (alarm.name, alarm.priority, alarm.onset) == ("asystole", "high", 8.5)


def test_af_needs_irregular_rr_and_the_model_for_af_on_s():
    rng = np.random.default_rng(0)
    irregular = rng.uniform(0.45, 1.1, 30)
    cfg = AlarmConfig(af_on_s=20)
    # irregular RR with a model that says no AF: nothing
    assert not any(run(AlarmManager(cfg, af_threshold=0.5), 40, rr=irregular, afib=0.1))
    # the model alone on regular RR: nothing
    assert not any(run(AlarmManager(cfg, af_threshold=0.5), 40, afib=0.9))
    both = run(AlarmManager(cfg, af_threshold=0.5), 40, rr=irregular, afib=0.9)
    first = next(i for i, a in enumerate(both) if "atrial_fibrillation" in a)
    assert first == 20 and both[first]["atrial_fibrillation"].onset == 0
    # no AFIB class in the bundle: never
    assert not any(run(AlarmManager(cfg, af_threshold=None), 40, rr=irregular, afib=0.9))


def test_one_ectopic_beat_does_not_fire_af():
    rr = REGULAR.copy()
    rr[15:17] = (0.45, 1.15)  # premature beat and its compensatory pause
    assert not any(run(AlarmManager(af_threshold=0.5), 40, rr=rr, afib=0.9))


@pytest.mark.parametrize(
    "pattern",
    [(0.6, 1.0), (0.6, 0.9, 0.9), (1.0, 1.5)],  # bigeminy, trigeminy, alternating pauses
    ids=["bigeminy", "trigeminy", "pauses"],
)
def test_patterned_rr_is_regular_at_some_lag_and_does_not_fire_af(pattern):
    rr = np.resize(np.array(pattern), 30)
    assert np.median(np.abs(np.diff(rr))) / np.median(rr) > 0.2  # irregular at lag 1
    assert irregularity(rr) == 0.0
    assert not any(run(AlarmManager(af_threshold=0.5), 40, rr=rr, afib=0.9))
    random = np.random.default_rng(1).uniform(0.45, 1.1, 30)
    assert irregularity(random) > AlarmConfig().af_irregularity


def test_lead_off_is_a_low_priority_technical_alarm_after_lead_off_s():
    m = AlarmManager()
    out = run(m, 4, quality={"I": "ok", "II": "off"})
    assert out[:2] == [{}, {}] and out[2]["lead_off"].priority == "low"
    assert out[2]["lead_off"].reason == "lead off: II"


@pytest.mark.parametrize("field", ["brady_bpm", "clear_s", "af_on_s"])
def test_bad_settings_are_refused(field):
    with pytest.raises(ValueError, match=field):
        AlarmConfig(**{field: -1})
