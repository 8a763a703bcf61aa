"""The one preprocessing: pinned by golden vectors on real records, and its invariants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bell_edge.config import PreprocessConfig, config_hash, from_dict, to_dict
from bell_edge.data.preprocess import fit_length, preprocess, preprocess_window, record_windows
from bell_edge.data.records import read_record

GOLDEN = json.loads((Path(__file__).parent / "golden_preprocess.json").read_text())


def test_config_hash_is_pinned_and_round_trips():
    cfg = PreprocessConfig()
    assert cfg.hash() == GOLDEN["preprocess_hash"], "preprocessing defaults changed"
    assert from_dict(PreprocessConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert config_hash(dataclasses.replace(cfg, fs=250)) != cfg.hash()


@pytest.mark.parametrize("name", sorted(GOLDEN["records"]))
def test_golden_vectors(name):
    gold = GOLDEN["records"][name]
    rec = read_record(Path(__file__).resolve().parents[3] / "shared" / "data" / name)
    windows, valid, starts = record_windows(rec.signal, rec.fs, PreprocessConfig())
    assert list(windows.shape) == gold["shape"]
    assert starts == gold["starts"]
    assert valid.all()
    idx = gold["sample_index"]
    for lead, values in gold["samples"].items():
        np.testing.assert_allclose(windows[0, int(lead), idx], values, atol=1e-5)
    last = np.abs(windows[-1]).mean(axis=1)
    np.testing.assert_allclose(last, gold["last_window_lead_mean_abs"], atol=1e-5)


def test_zscore_and_flat_lead(cpsc2018):
    rec = read_record(cpsc2018 / "A1980")
    x = rec.signal.copy()
    x[3] = 0.25  # a flat lead (lead-off at a constant offset)
    out = preprocess(x, rec.fs, PreprocessConfig())
    assert out.dtype == np.float32 and out.shape == (12, 1000)
    assert np.isfinite(out).all()
    assert np.all(out[3] == 0)
    live = np.delete(out, 3, axis=0)
    np.testing.assert_allclose(live.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(live.std(axis=1), 1, atol=1e-4)


def test_band_pass_removes_wander_and_mains():
    fs, t = 500, np.arange(5000) / 500
    ecg_like = np.sin(2 * np.pi * 5 * t)
    dirty = ecg_like + 3 * np.sin(2 * np.pi * 0.1 * t) + np.sin(2 * np.pi * 50 * t)
    cfg = PreprocessConfig()
    clean, _ = preprocess_window(dirty[None], fs, cfg)
    ref, _ = preprocess_window(ecg_like[None], fs, cfg)
    assert np.corrcoef(clean[0, 100:-100], ref[0, 100:-100])[0, 1] > 0.99


def test_fit_length_crops_and_pads():
    x = np.ones((12, 700), dtype=np.float32)
    padded, valid = fit_length(x, 1000)
    assert padded.shape == (12, 1000) and valid.sum() == 700 and np.all(padded[:, 700:] == 0)
    cropped, valid = fit_length(np.ones((12, 1500), np.float32), 1000)
    assert cropped.shape == (12, 1000) and valid.all()


def test_resampling_rates_agree(cpsc2018):
    """The same ECG at 500 Hz and decimated to 250 Hz gives nearly the same window."""
    rec = read_record(cpsc2018 / "A1980")
    cfg = PreprocessConfig()
    a, _ = preprocess_window(rec.signal[:, :5000], 500, cfg)
    b, _ = preprocess_window(rec.signal[:, :5000:2], 250, cfg)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("fs_in", [500, 1000, 257, 200, 360, 300])
@pytest.mark.parametrize("shape", [(3, 4000), (12, 4999), (2, 3, 37), (1234,), (2,)])
def test_resample_equals_resample_poly_with_line_padding(fs_in, shape):
    """The cached anti-alias filter, and the polyphase decimation used where the output rate
    divides the input rate (500, 1000, 200, 300 Hz), give scipy's resample_poly to within float
    rounding, at window edges too."""
    from fractions import Fraction

    from scipy import signal as sps

    from bell_edge.data.preprocess import resample

    x = np.random.default_rng(fs_in).standard_normal(shape).cumsum(axis=-1) + 50.0
    ratio = Fraction(100) / Fraction(fs_in)
    expected = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1, padtype="line")
    for _ in range(2):  # the cached taps must survive a call unchanged
        got = resample(x, fs_in, 100)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("shape", [(12, 1000), (3, 50), (1000,), (2, 8)])
def test_band_pass_with_cached_initial_conditions_equals_scipy_sosfiltfilt(shape):
    from scipy import signal as sps

    from bell_edge.data.preprocess import _bandpass, _sosfiltfilt

    cfg = PreprocessConfig()
    sos, zi = _bandpass(cfg.filter_order, *cfg.band_hz, cfg.fs)
    x = np.random.default_rng(len(shape)).standard_normal(shape).cumsum(axis=-1)
    for padlen in (0, min(27, shape[-1] - 1)):
        expected = sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)
        np.testing.assert_array_equal(_sosfiltfilt(sos, zi, x, padlen), expected)
