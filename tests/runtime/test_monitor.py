"""StreamingMonitor on real records: offline equality, bad samples, bad usage, a fuzz test."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import wfdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import signal as sps

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.preprocess import preprocess_window
from bell_edge.data.records import read_record
from bell_edge.errors import InputError
from bell_edge.runtime.bundle import BundleError
from bell_edge.runtime.engine import Engine
from bell_edge.runtime.monitor import StreamingMonitor

LEADS = list(CANONICAL_LEADS)


@pytest.fixture(scope="module")
def engine(tiny_bundle) -> Engine:
    return Engine(tiny_bundle)


@pytest.fixture(scope="module")
def a1988(cpsc2018):
    """54 s, 12 leads, 500 Hz, mV; its V6 really comes off (flat) from 29 s."""
    return read_record(cpsc2018 / "A1988")


def stream(monitor, x: np.ndarray, seed: int = 0, max_chunk: int = 700) -> list:
    """Push `(samples, leads)` in random chunk sizes; all events."""
    rng, events, i = np.random.default_rng(seed), [], 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk))
        events += monitor.push(x[i : i + n])
        i += n
    return events


def offline(engine, signal, fs, event, window_s=10.0) -> np.ndarray:
    """Offline preprocessing + inference on the event's window, its masked leads zeroed."""
    end = int(round(event.t * fs))
    x = np.array(signal[:, end - int(round(window_s * fs)) : end])
    mask = np.array([lead not in event.masked for lead in engine.bundle.lead_order])
    x[~mask] = 0
    window, _ = preprocess_window(x, fs, engine.bundle.preprocess)
    return engine.probabilities(window[None], mask[None])[0]


def probs(event) -> np.ndarray:
    return np.array(list(event.probabilities.values()))


def test_events_equal_offline_preprocessing_and_inference(engine, a1988):
    monitor = StreamingMonitor(engine, a1988.fs, LEADS, hop_s=1.0)
    events = stream(monitor, a1988.signal.T)
    assert [e.t for e in events] == [float(k) for k in range(1, 55)]
    assert [e.analysed for e in events] == [False] * 9 + [True] * 45
    assert events[0].reason == "warming up: 1.0 of 10 s buffered"
    pairs = engine.bundle.manifest["training"]["exclusive_pairs"]
    assert ["NORM", "MI"] in pairs  # never together in PTB-XL's labels
    for e in events[9:]:
        np.testing.assert_array_equal(probs(e), offline(engine, a1988.signal, a1988.fs, e))
        above = {
            c for (c, p), th in zip(e.probabilities.items(), monitor.thresholds, strict=True)
            if p >= th
        }  # fmt: skip
        assert {c for c, on in e.decisions.items() if on} == above - set(e.overruled)
        assert all(sorted([a, b]) in map(sorted, pairs) for a, b in e.overruled.items())
        assert not any(e.decisions[a] and e.decisions[b] for a, b in pairs)
        assert 0 < e.latency_ms < 5000
    # the real lead-off: V6 is flat from 29.5 to 34 s; windows with >= 1 s of it mask V6 alone
    off = [e.t for e in events if e.quality["V6"] == "off"]
    assert off == [float(t) for t in range(31, 44)]
    for e in events:
        assert e.masked == (("V6",) if e.t in off else ())
        assert all(flag == "ok" for lead, flag in e.quality.items() if lead != "V6")


def test_two_lead_holter_equals_offline(engine, cpsc2021):
    rec = read_record(cpsc2021 / "data_8_4")  # 41 s, leads I and II, 200 Hz
    monitor = StreamingMonitor(engine, rec.fs, ["I", "II"], hop_s=2.5)
    events = [e for e in stream(monitor, rec.signal[:2].T, seed=1) if e.analysed]
    assert len(events) == 13
    by_set = engine.bundle.manifest["lead_set_thresholds"]["I,II"]["thresholds"]
    assert monitor.lead_set == "I,II"  # the thresholds fitted with the other leads masked
    np.testing.assert_allclose(monitor.thresholds, by_set, rtol=1e-6)
    for e in events:
        assert e.masked == tuple(LEADS[2:])
        np.testing.assert_array_equal(probs(e), offline(engine, rec.signal, rec.fs, e))


def test_fifteen_lead_record_drops_the_extra_leads(engine, ptbdb):
    raw = wfdb.rdrecord(str(ptbdb / "s0010_re"), return_res=32)
    assert raw.n_sig == 15 and raw.sig_name[-3:] == ["vx", "vy", "vz"]
    monitor = StreamingMonitor(engine, raw.fs, raw.sig_name, hop_s=5.0)
    assert monitor.leads == tuple(LEADS)
    events = stream(monitor, raw.p_signal, max_chunk=3000)
    assert len(events) == 7 and sum(e.analysed for e in events) == 6
    rec = read_record(ptbdb / "s0010_re")
    for e in events[1:]:
        assert list(e.quality) == LEADS and e.masked == ()
        np.testing.assert_array_equal(probs(e), offline(engine, rec.signal, rec.fs, e))


def test_nan_chunks_short_gaps_are_filled_long_ones_mask_the_lead(engine, a1988):
    x = a1988.signal.T[:15000].astype(np.float64)  # 30 s, all leads fine
    x[6000:6010, 0] = np.nan  # 20 ms in lead I: interpolated
    x[8000:8500, 1] = np.nan  # 1 s in lead II: a gap
    x[12000:12500] = np.inf  # 1 s in every lead
    monitor = StreamingMonitor(engine, a1988.fs, LEADS)
    events = {e.t: e for e in stream(monitor, x)}
    assert events[13.0].quality["I"] == "ok" and events[13.0].masked == ()
    assert events[17.0].quality["II"] == "gap" and events[17.0].masked == ("II",)
    assert events[17.0].analysed and np.isfinite(probs(events[17.0])).all()
    assert not events[25.0].analysed
    assert events[25.0].reason.startswith("too few good leads: 0 of 2 needed (I gap, II gap")
    # a short gap goes in linearly interpolated, as data.records fills short gaps
    window = a1988.signal[:, 1500:6500].astype(np.float64)  # the window of the event at 13 s
    idx = np.arange(4500, 4510)
    window[0, idx] = np.interp(idx, [4499, 4510], window[0, [4499, 4510]])
    model_window, _ = preprocess_window(window, a1988.fs, engine.bundle.preprocess)
    np.testing.assert_array_equal(probs(events[13.0]), engine.probabilities(model_window[None])[0])


def test_a_lead_stuck_at_a_rail_is_saturated_and_masked(engine, a1988):
    x = a1988.signal.T[:15000].copy()
    rail = x[:, 1].max() + 2.0
    x[7000:7600, 1] = rail  # lead II at the amplifier rail for 1.2 s
    events = {e.t: e for e in stream(StreamingMonitor(engine, a1988.fs, LEADS), x)}
    for t in (15.0, 20.0, 24.0):
        assert events[t].quality["II"] == "saturated" and events[t].masked == ("II",)
        assert events[t].analysed
    assert events[26.0].quality["II"] == "ok" and events[26.0].masked == ()


def test_a_real_rail_in_a_holter(engine, cpsc2021):
    rec = read_record(cpsc2021 / "data_8_3")  # lead II clips at 10.2 mV near 110-130 s
    x = rec.signal[:2, 100 * 200 : 135 * 200].T
    events = StreamingMonitor(engine, rec.fs, ["I", "II"], hop_s=5.0).push(x)
    flags = [e.quality["II"] for e in events]
    assert "saturated" in flags and all(e.quality["I"] == "ok" for e in events)
    assert all(e.reason.startswith("too few good leads") for e in events if "saturated" in
               e.quality.values())  # fmt: skip


def test_noise_is_flagged(engine, a1988):
    x = a1988.signal.T[:5000].astype(np.float64)
    x[:, 6] += np.random.default_rng(0).normal(0, 3 * x[:, 6].std(), 5000)
    (event,) = StreamingMonitor(engine, a1988.fs, LEADS, hop_s=10.0).push(x)
    assert event.quality["V1"] == "noisy" and event.masked == ("V1",)
    assert sum(f == "ok" for f in event.quality.values()) == 11


def test_dropped_samples_from_a_sample_counter(engine, a1988):
    x = a1988.signal.T
    monitor = StreamingMonitor(engine, a1988.fs, LEADS)
    events = monitor.push(x[:6000], start=0)
    events += monitor.push(x[7000:15000], start=7000)  # 2 s dropped
    events += monitor.push(x[14000:20000], start=14000)  # 2 s sent twice
    assert [e.t for e in events] == [float(k) for k in range(1, 41)]
    by_t = {e.t: e for e in events}
    assert by_t[12.0].analysed and set(by_t[12.0].quality.values()) == {"ok"}
    assert set(by_t[14.0].quality.values()) == {"gap"} and not by_t[14.0].analysed
    assert by_t[23.0].quality["I"] == "gap" and not by_t[23.0].analysed
    assert by_t[24.0].analysed and set(by_t[24.0].quality.values()) == {"ok"}
    np.testing.assert_array_equal(
        probs(by_t[30.0]), offline(engine, a1988.signal, a1988.fs, by_t[30.0])
    )
    with pytest.raises(ValueError, match="start must be a sample index"):
        monitor.push(x[:10], start=-3)


def test_rate_change_between_sessions(engine, cpsc2018):
    """The rate is fixed per session; a new session at another rate gives the same answers."""
    rec = read_record(cpsc2018 / "A1986")  # 43 s at 500 Hz
    sessions = {}
    for fs, (up, down) in {500: (1, 1), 250: (1, 2), 1000: (2, 1)}.items():
        x = sps.resample_poly(rec.signal.astype(np.float64), up, down, axis=1)
        events = stream(StreamingMonitor(engine, fs, LEADS), x.T, max_chunk=fs)
        sessions[fs] = [e for e in events if e.analysed]
        for e in sessions[fs][::10]:
            np.testing.assert_array_equal(probs(e), offline(engine, x, fs, e))
    assert [e.t for e in sessions[250]] == [e.t for e in sessions[500]] == list(range(10, 44))
    for fs in (250, 1000):
        diff = max(
            abs(probs(a) - probs(b)).max() for a, b in zip(sessions[fs], sessions[500], strict=True)
        )
        assert diff < 0.02, (fs, diff)


def test_wrong_width_raises_and_the_stream_goes_on(engine, a1988):
    monitor = StreamingMonitor(engine, a1988.fs, LEADS, hop_s=1.0)
    for bad in (np.zeros((10, 11)), np.zeros(12), np.zeros((2, 3, 12)), 5.0, [[1, 2], [3]]):
        with pytest.raises(ValueError, match=r"expected \(n_samples, 12\)"):
            monitor.push(bad)
    assert monitor.samples == 0
    assert len(monitor.push(a1988.signal.T[:1000])) == 2


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_fs": 0}, "input_fs must be a positive number"),
        ({"input_fs": float("nan")}, "input_fs must be a positive number"),
        ({"input_fs": "fast"}, "input_fs must be a number"),
        ({"input_fs": 20}, "below 50 Hz"),
        ({"leads": ["I", "II", "foo"]}, "unknown lead name 'foo'"),
        ({"leads": ["I", "i"]}, "lead I appears twice"),
        ({"leads": "I"}, "sequence of lead names"),
        ({"leads": ["vx", "vy"]}, "none of the leads"),
        ({"hop_s": 12.0, "window_s": 10.0}, "longer than window_s"),
        ({"window_s": 20.0}, r"must lie in \[2, 10\]"),
        ({"hop_s": 0.0}, "hop_s must be a positive number"),
        ({"hop_s": 0.001}, "less than one sample"),
        ({"leads": ["II"]}, r"min_leads 2 must lie in \[1, 1\]"),
    ],
)
def test_wrong_usage_is_a_clear_value_error(engine, kwargs, message):
    args = {"input_fs": 500, "leads": LEADS, **kwargs}
    with pytest.raises(ValueError, match=message):
        StreamingMonitor(engine, **args)


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    data = bytearray((copy / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.int8\.onnx: sha256 does not match") as exc:
        Engine(copy)
    assert isinstance(exc.value, InputError)


def test_fp32_engine_streams_too(tiny_bundle, a1988):
    engine = Engine(tiny_bundle, precision="fp32")
    events = StreamingMonitor(engine, a1988.fs, LEADS, hop_s=10.0).push(a1988.signal.T[:5000])
    np.testing.assert_array_equal(probs(events[0]), offline(engine, a1988.signal, 500, events[0]))


FUZZ_LEADS = ["I", "II", "V1"]
_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-5, 5),
    st.integers(-(2**70), 2**70),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from(["1.5", "nan", "-inf", 1j]),
)
_rows = st.integers(0, 40)
_chunks = st.one_of(
    _rows.flatmap(lambda n: hnp.arrays(np.float64, (n, 3), elements=st.floats())),
    _rows.flatmap(lambda n: hnp.arrays(np.float32, (n, 3), elements=st.floats(width=32))),
    _rows.flatmap(lambda n: hnp.arrays(np.int64, (n, 3))),
    _rows.flatmap(
        lambda n: st.lists(st.lists(_values, min_size=3, max_size=3), min_size=n, max_size=n)
    ),  # fmt: skip
    st.tuples(_rows, st.floats(-1e12, 1e12)).map(lambda a: np.full((a[0], 3), a[1])),
    _rows.map(lambda n: np.random.default_rng(n).normal(0, 1, (n, 3))),
)


_steps = st.tuples(_chunks, st.sampled_from([0, 0, 30, 120]), st.sampled_from([None, 0, 1, 2]))


def test_fuzz_malformed_chunks_never_raise_nor_give_nan(engine):
    """40 streams x 25 random malformed chunks (>= 1,000), each followed by 0 to 120 clean
    samples (one lead off at times) so that analysis happens too: no exception, no NaN."""
    pushed, events = [], []

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(st.lists(_steps, min_size=25, max_size=25))
    def run(steps):
        monitor = StreamingMonitor(engine, 50, FUZZ_LEADS, hop_s=2.0, window_s=2.0)
        rng = np.random.default_rng(len(pushed))
        for chunk, n_clean, off in steps:
            events.extend(monitor.push(chunk))
            pushed.append(chunk)
            clean = rng.normal(0, 1, (n_clean, 3))
            if off is not None:
                clean[:, off] = 0.0
            events.extend(monitor.push(clean))

    run()
    assert len(pushed) >= 1000
    analysed = [e for e in events if e.analysed]
    assert len(analysed) > 20 and any(e.masked != tuple(LEADS[2:6] + LEADS[7:]) for e in analysed)
    for e in events:
        json.dumps(e.to_dict(), allow_nan=False)  # raises on any NaN or inf
        assert set(e.quality) == set(FUZZ_LEADS)


def test_of_an_exclusive_pair_the_more_probable_class_stays():
    from bell_edge.runtime.monitor import one_of_each_pair

    classes = ["NORM", "MI", "SR", "AFIB", "STACH"]
    pairs = [["NORM", "MI"], ["SR", "AFIB"], ["SR", "STACH"]]
    thresholds = np.array([0.5, 0.2, 0.4, 0.1, 0.5])
    # NORM 0.6 against MI 0.3 (further above its lower threshold): NORM stays. AFIB 0.7 against
    # SR 0.65: AFIB stays, and SR, overruled, no longer overrules STACH (0.55).
    p = np.array([0.6, 0.3, 0.65, 0.7, 0.55])
    decisions, overruled = one_of_each_pair(classes, p, thresholds, pairs)
    assert decisions == {"NORM": True, "MI": False, "SR": False, "AFIB": True, "STACH": True}
    assert overruled == {"MI": "NORM", "SR": "AFIB"}
    plain, none = one_of_each_pair(classes, p, thresholds, [])
    assert plain == dict(zip(classes, (p >= thresholds).tolist(), strict=True)) and none == {}
