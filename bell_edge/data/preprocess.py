"""THE preprocessing, shared by training, calibration and the bedside runtime (numpy + scipy).

One raw segment of `window_s` seconds at any rate becomes one model window:
resample (polyphase) -> zero-phase Butterworth band-pass -> per-lead z-score -> crop or pad.
Training windows and streaming windows go through the same `preprocess_window`, so a monitor
sees exactly what the model saw in training.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from bell_edge.config import PreprocessConfig

__all__ = ["PreprocessConfig", "fit_length", "preprocess", "preprocess_window", "record_windows"]


@lru_cache(maxsize=32)
def _bandpass(order: int, low: float, high: float, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """The band-pass in second-order sections and its steady-state initial conditions."""
    sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return sos, sps.sosfilt_zi(sos)


def _sosfiltfilt(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """`scipy.signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)` (odd padding), step for step,
    with `zi = sosfilt_zi(sos)` given: scipy re-solves it on every call, which was a third of
    the band-pass's time on a monitor's 10-s window (it filters one at every hop)."""
    if padlen > 0:
        left = 2 * x[..., :1] - x[..., padlen:0:-1]
        right = 2 * x[..., -1:] - x[..., -2 : -padlen - 2 : -1]
        x = np.concatenate((left, x, right), axis=-1)
    zi = zi.reshape((len(sos),) + (1,) * (x.ndim - 1) + (2,))
    y, _ = sps.sosfilt(sos, x, axis=-1, zi=zi * x[..., :1])
    y, _ = sps.sosfilt(sos, y[..., ::-1], axis=-1, zi=zi * y[..., -1:])
    y = y[..., ::-1]
    return y[..., padlen:-padlen] if padlen > 0 else y


@lru_cache(maxsize=32)
def _antialias_taps(up: int, down: int) -> np.ndarray:
    """resample_poly's own default low-pass (Kaiser beta 5, 20 * max(up, down) + 1 taps), designed
    once per rate pair instead of on every call (the monitor resamples every hop)."""
    rate = max(up, down)
    return sps.firwin(20 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliasing included): what
    `scipy.signal.resample_poly(x, up, down, padtype="line")` gives."""
    if fs_in == fs_out:
        return x
    ratio = Fraction(fs_out) / Fraction(fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    taps = _antialias_taps(up, down)  # resample_poly copies it before scaling
    if up == 1 and x.shape[-1] >= 2:
        return _decimate(x, down, taps)
    return sps.resample_poly(x, up, down, axis=-1, window=taps, padtype="line")


def _decimate(x: np.ndarray, down: int, taps: np.ndarray) -> np.ndarray:
    """`resample_poly(x, 1, down, window=taps, padtype="line")` to within float rounding, 3x
    faster on a monitor's 12 x 5000 window (scipy's upfirdn loops sample by sample).

    Output n is sum_j taps[j] * e[n * down + half - j], where e is x extended on both sides along
    the line through its first and last samples (upfirdn's "line" mode). In polyphase form the
    extended signal is cut into rows of `down` samples, one matrix product gives every row's dot
    product with every `down`-tap slice of the reversed taps, and output n sums the diagonal
    that starts at row n."""
    n, k = x.shape[-1], len(taps)
    half, n_out, phases = (k - 1) // 2, -(-n // down), -(-k // down)
    rows = n_out + phases - 1
    slope = (x[..., -1:] - x[..., :1]) / (n - 1)
    left = x[..., :1] - np.arange(half, 0, -1) * slope
    right = x[..., -1:] + np.arange(1, rows * down - n - half + 1) * slope
    extended = np.concatenate((left, x, right), axis=-1)
    g = np.zeros(phases * down)
    g[:k] = taps[::-1]
    blocks = extended.reshape(*x.shape[:-1], rows, down)
    z = np.ascontiguousarray(g.reshape(phases, down) @ np.swapaxes(blocks, -1, -2))
    s = z.strides
    diagonals = np.lib.stride_tricks.as_strided(
        z, shape=(*z.shape[:-2], phases, n_out), strides=(*s[:-2], s[-2] + s[-1], s[-1])
    )
    return diagonals.sum(axis=-2)


def preprocess(x: np.ndarray, fs: float, cfg: PreprocessConfig) -> np.ndarray:
    """Resample, band-pass and z-score a `(leads, samples)` signal of any length.

    A flat lead (std below `cfg.std_floor`) becomes all zeros, never NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    x = resample(x - x.mean(axis=-1, keepdims=True), fs, cfg.fs)
    sos, zi = _bandpass(cfg.filter_order, *cfg.band_hz, cfg.fs)
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    x = _sosfiltfilt(sos, zi, x, padlen)
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    flat = std < cfg.std_floor
    x = np.where(flat, 0.0, x / np.where(flat, 1.0, std))
    return x.astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop or zero-pad the last axis to `n`; returns the array and a bool mask of real samples."""
    valid = np.zeros(n, dtype=bool)
    m = min(x.shape[-1], n)
    valid[:m] = True
    if x.shape[-1] >= n:
        return np.ascontiguousarray(x[..., :n]), valid
    out = np.zeros((*x.shape[:-1], n), dtype=x.dtype)
    out[..., :m] = x
    return out, valid


def preprocess_window(
    x: np.ndarray, fs: float, cfg: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One raw segment -> one fixed-length window `(leads, cfg.window_samples)` + valid mask."""
    return fit_length(preprocess(x, fs, cfg), cfg.window_samples)


def window_starts(n_samples: int, fs: float, cfg: PreprocessConfig) -> list[int]:
    """Start samples (at the input rate) of the non-overlapping windows of a record.

    A record shorter than one window gives one padded window; otherwise only full windows.
    """
    span = int(round(cfg.window_s * fs))
    if n_samples <= span:
        return [0]
    return list(range(0, n_samples - span + 1, span))


def record_windows(
    x: np.ndarray, fs: float, cfg: PreprocessConfig, max_windows: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """All windows of a record: `(W, leads, T)` float32, `(W, T)` valid masks, start samples."""
    span = int(round(cfg.window_s * fs))
    starts = window_starts(x.shape[-1], fs, cfg)[:max_windows]
    pairs = [preprocess_window(x[..., s : s + span], fs, cfg) for s in starts]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), starts
