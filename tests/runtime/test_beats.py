"""Streaming QRS detection on a real annotated record (mitdb/100, first 5 minutes)."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb
from wfdb import processing

from bell_edge.runtime.beats import BeatDetector

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def _stream(x, fs, good):
    det, span, hop, beats = BeatDetector(fs, ("II", "V5")), int(10 * fs), int(fs), []
    for end in range(hop, x.shape[1] + 1, hop):
        beats += det.update(x[:, max(0, end - span) : end], good, end)
    return det, np.array(beats)


@pytest.mark.slow
def test_streamed_beats_match_the_reference_and_give_a_heart_rate(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=300 * 360)
    x, fs = rec.p_signal.T, float(rec.fs)
    det, beats = _stream(x, fs, [0, 1])
    ann = wfdb.rdann(str(mitdb100), "atr", sampto=len(x[0]) - det.settle)
    ref = np.array([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y in BEAT_SYMBOLS])
    c = processing.compare_annotations(ref, beats, int(0.15 * fs))
    assert c.tp / len(ref) >= 0.995 and c.tp / len(beats) >= 0.995
    rr = np.diff(ref[ref > len(x[0]) - det.settle - 8 * fs]) / fs
    assert abs(det.hr_bpm() - 60 / rr.mean()) < 3


def test_no_good_lead_gives_no_beat_and_no_heart_rate(mitdb100):
    rec = wfdb.rdrecord(str(mitdb100), sampto=60 * 360)
    det, beats = _stream(rec.p_signal.T, float(rec.fs), [])
    assert len(beats) == 0 and det.hr_bpm() is None
