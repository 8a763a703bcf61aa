"""Streaming QRS detection on real annotated records."""

from __future__ import annotations

import numpy as np
import wfdb
from wfdb import processing

from bell_edge.runtime import beats as beats_module
from bell_edge.runtime.beats import CONTEXT_S, DELAY_S, BeatDetector, detect

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def _stream(x, fs, good, decide_every_hop=False):
    det, span, hop, beats = BeatDetector(fs, ("II", "V5")), int(10 * fs), int(fs), []
    if decide_every_hop:
        det.decide = det.delay
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


def test_the_detector_runs_every_second_hop_and_decides_as_at_every_hop(mitdb100, monkeypatch):
    rec = wfdb.rdrecord(str(mitdb100), sampto=240 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    calls = []
    monkeypatch.setattr(beats_module, "detect", lambda *a: calls.append(1) or detect(*a))
    det, beats = _stream(x, fs, [0, 1])
    runs = len(calls)
    every_hop, reference = _stream(x, fs, [0, 1], decide_every_hop=True)
    assert len(calls) - runs > 1.9 * runs  # 1-s hops: one run every 2 s instead of every 1 s
    assert len(beats) > 250 and np.array_equal(beats, reference)
    assert det.done == every_hop.done and det.hr_bpm() == every_hop.hr_bpm()


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
