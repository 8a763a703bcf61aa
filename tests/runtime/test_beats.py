"""Streaming QRS detection on real annotated records."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb
from wfdb import processing

from bell_edge.runtime import beats as beats_module
from bell_edge.runtime.beats import CONTEXT_S, DELAY_S, BeatDetector, detect

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def _stream(x, fs, good):
    det, span, hop, beats = BeatDetector(fs, ("II", "V5")), int(10 * fs), int(fs), []
    for end in range(hop, x.shape[1] + 1, hop):
        beats += det.update(x[:, max(0, end - span) : end], good, end)
    return det, np.array(beats)


def test_streamed_beats_match_the_reference_and_give_a_heart_rate(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=120 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    det, beats = _stream(x, fs, [0, 1])
    assert det.done == x.shape[1] - DELAY_S * fs
    ann = wfdb.rdann(str(mitdb100), "atr", sampto=det.done)
    ref = np.array([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y in BEAT_SYMBOLS])
    c = processing.compare_annotations(ref, beats, int(0.15 * fs))
    assert c.tp / len(ref) >= 0.995 and c.tp / len(beats) >= 0.995
    rr = np.diff(ref[ref >= det.done - 8 * fs]) / fs
    assert abs(det.hr_bpm() - 60 / rr.mean()) < 2


def _random_flags(hops, rng, flip=0.05):
    """Per-hop good leads of a 2-lead stream, changing at random."""
    flags, good = [], [0, 1]
    for _ in range(hops):
        if rng.random() < flip:
            good = [[], [0], [1], [0, 1]][rng.integers(4)]
        flags.append(good)
    return flags


def test_beats_decided_less_often_are_those_decided_at_every_hop(mitdb100, monkeypatch):
    rec = wfdb.rdrecord(str(mitdb100), sampto=300 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    flags = _random_flags(300, np.random.default_rng(0))
    calls = []
    monkeypatch.setattr(beats_module, "detect", lambda *a: calls.append(1) or detect(*a))
    hops, runs = {}, {}
    for mode in ("less often", "every hop"):
        det, before = BeatDetector(fs, ("II", "V5")), len(calls)
        if mode == "every hop":
            det.decide = det.delay  # the detector as it was: decided when final
        hops[mode] = [
            (det.update(x[:, max(0, end - 3600) : end], good, end), det.hr_bpm(), det.silent_s(),
             list(det.rr_s()))
            for end, good in zip(range(360, x.shape[1] + 1, 360), flags, strict=True)
        ]  # fmt: skip
        runs[mode] = len(calls) - before
    assert sum(len(h[0]) for h in hops["every hop"]) > 250
    assert hops["less often"] == hops["every hop"]  # beats, HR, silence, RR at every hop
    assert runs["every hop"] > 2.2 * runs["less often"]  # 1-s hops: every third


@pytest.mark.parametrize("hop_s", [0.3, 2.0, 7.0])
def test_final_beats_stay_inside_analysable_final_signal_at_any_hop(mitdb100, hop_s):
    rec = wfdb.rdrecord(str(mitdb100), sampto=200 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    hop = int(hop_s * fs)
    ends = range(hop, x.shape[1] + 1, hop)
    det, found = BeatDetector(fs, ("II", "V5")), []
    for end, good in zip(ends, _random_flags(len(ends), np.random.default_rng(1)), strict=True):
        new = det.update(x[:, max(0, end - 3600) : end], good, end)
        found += new
        assert 0 <= det.analysable_since <= det.done and all(b < det.done for b in new)
        recent = np.array(det.recent)
        assert (recent >= det.analysable_since).all() and (np.diff(recent) >= det.refractory).all()
    assert len(found) > 100 and (np.diff(found) >= det.refractory).all()


def test_beats_stay_right_once_the_context_ring_wraps(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=int((CONTEXT_S + 120) * 360))
    x, fs = rec.p_signal.T, float(rec.fs)
    det, beats = _stream(x, fs, [0, 1])
    late = beats[beats >= CONTEXT_S * fs]  # decided from a context read across the ring's end
    ann = wfdb.rdann(str(mitdb100), "atr", sampfrom=int(CONTEXT_S * fs), sampto=det.done)
    ref = np.array([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y in BEAT_SYMBOLS])
    c = processing.compare_annotations(ref, late, int(0.15 * fs))
    assert len(ref) > 100 and c.tp == len(ref) == len(late)


def test_no_good_lead_gives_no_beat_and_no_heart_rate(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=60 * 360)
    det, beats = _stream(rec.p_signal.T, float(rec.fs), [])
    assert len(beats) == 0 and det.hr_bpm() is None and det.silent_s() is None


def test_a_stretch_without_good_leads_is_not_analysable(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=60 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    det, span, hop, beats = BeatDetector(fs, ("II", "V5")), int(10 * fs), int(fs), []
    for end in range(hop, x.shape[1] + 1, hop):
        # both leads bad from 20 to 30 s: every 10-s window holding that stretch is bad
        good = [] if 20 * fs < end <= 40 * fs else [0, 1]
        beats += det.update(x[:, max(0, end - span) : end], good, end)
    beats = np.array(beats) / fs
    assert not ((beats > 20.5) & (beats < 30)).any() and (beats > 35).any()
    assert det.hr_bpm() is not None


def test_short_flat_and_non_finite_windows_give_no_beats():
    fs = 250.0
    t = np.arange(int(10 * fs)) / fs
    assert len(detect(np.sin(2 * np.pi * t)[: int(2 * fs)], fs)) == 0  # shorter than 3 s
    assert len(detect(np.zeros(int(10 * fs)), fs)) == 0
    assert len(detect(np.full(int(10 * fs), np.nan), fs)) == 0
