"""Traces of known truth for calibrating the null tests, and the statistics each test takes.

The calibration suite (``tests/fitting/test_null_tests.py``, ``benchmarks/bench_calibration.py``)
runs every test of :mod:`servelab.fitting` on simulated data whose truth is known: a null case
(stationary Poisson, one Gamma shape, one unimodal law, equal correlations, the fitted family)
and a positive control at the papers' effect sizes, at realistic sizes (dense and sparse, hours
and weeks, fine and coarse clocks). This module holds the simulators (seeded, vectorised) and
the reduction of a simulated trace to the small statistics the tests take. It is for
calibration only: the report computes the same statistics in SQL over the store.
"""
from __future__ import annotations

import math

import numpy as np

from servelab.fitting.rate_tests import (
    BURST_SCALES,
    block_counts,
    burstiness_test,
    rate_shift_test,
    window_counts,
    within_block_dispersion,
)
from servelab.fitting.shape_tests import gamma_shape_shift_test
from servelab.fitting.verdicts import NullTest

__all__ = [
    "poisson_arrivals",
    "modulated_poisson_arrivals",
    "gamma_renewal_arrivals",
    "switching_arrivals",
    "on_clock",
    "window_gap_stats",
    "window_gap_cv",
    "arrival_tests",
    "BURST_SCALES",
]



def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def poisson_arrivals(rate: float, span_s: float, *, seed: int) -> np.ndarray:
    """Sorted arrival times of a stationary Poisson process on [0, span_s)."""
    rng = _rng(seed)
    return np.sort(rng.uniform(0.0, span_s, rng.poisson(rate * span_s)))


def modulated_poisson_arrivals(rate: float, span_s: float, *, ratio: float, period_s: float, seed: int) -> np.ndarray:
    """Poisson arrivals whose rate follows ``rate (1 + a sin(2 pi t / period_s))`` with max/min ``ratio``
    (thinning)."""
    a = (ratio - 1.0) / (ratio + 1.0)
    rng = _rng(seed)
    t = np.sort(rng.uniform(0.0, span_s, rng.poisson(rate * (1 + a) * span_s)))
    keep = rng.random(t.size) < (1 + a * np.sin(2 * np.pi * t / period_s)) / (1 + a)
    return t[keep]


def gamma_renewal_arrivals(rate: float, shape: float, span_s: float, *, seed: int) -> np.ndarray:
    """A stationary renewal process with Gamma(shape) gaps of mean 1/rate on [0, span_s)."""
    rng = _rng(seed)
    n = int(rate * span_s * 1.2 + 10 * math.sqrt(rate * span_s / min(shape, 1.0)) + 50)
    t = np.cumsum(rng.gamma(shape, 1.0 / (rate * shape), n)) - rng.uniform(0, 1.0 / rate)
    while t[-1] < span_s:  # rare: top up
        t = np.concatenate([t, t[-1] + np.cumsum(rng.gamma(shape, 1.0 / (rate * shape), n))])
    return t[(t >= 0) & (t < span_s)]


def switching_arrivals(states: tuple[tuple[float, float], ...], span_s: float, *, every_s: float = 1200.0,
                       seed: int) -> np.ndarray:
    """Gamma renewal arrivals whose (rate, shape) cycle through ``states`` every ``every_s`` seconds."""
    rng = _rng(seed)
    n_blocks = int(math.ceil(span_s / every_s))
    parts = []
    for i, (rate, shape) in enumerate(states):  # one vectorised draw per state, not per block
        blocks = np.arange(i, n_blocks, len(states))
        if blocks.size == 0:
            continue
        t = gamma_renewal_arrivals(rate, shape, blocks.size * every_s, seed=int(rng.integers(2**32)))
        b = (t // every_s).astype(np.int64)
        parts.append(blocks[b] * every_s + (t - b * every_s))
    t = np.sort(np.concatenate(parts))
    return t[t < span_s]


def on_clock(t: np.ndarray, resolution_s: float) -> np.ndarray:
    """Timestamps logged on a clock of ``resolution_s`` seconds (floored)."""
    return np.floor(t / resolution_s) * resolution_s


def window_gap_stats(t: np.ndarray, *, window_s: float, t0: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window (of the later arrival): positive gaps, their mean, the mean of their logs, zero gaps."""
    t = np.sort(np.asarray(t, dtype=float))
    g = np.diff(t)
    w = ((t[1:] - t0) // window_s).astype(np.int64)
    pos = g > 0
    k = int(w.max()) + 1 if w.size else 0
    n = np.bincount(w[pos], minlength=k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(w[pos], weights=g[pos], minlength=k) / n
        mlog = np.bincount(w[pos], weights=np.log(g[pos]), minlength=k) / n
    zeros = np.bincount(w[~pos], minlength=k).astype(float)
    return n, mean, mlog, zeros


def window_gap_cv(t: np.ndarray, *, window_s: float, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per window (of the later arrival): gaps and their CV (population std / mean; NaN under 2 gaps)."""
    t = np.sort(np.asarray(t, dtype=float))
    g = np.diff(t)
    w = ((t[1:] - t0) // window_s).astype(np.int64)
    k = int(w.max()) + 1 if w.size else 0
    n = np.bincount(w, minlength=k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(w, weights=g, minlength=k) / n
        var = np.bincount(w, weights=g * g, minlength=k) / n - mean**2
        cv = np.where((n >= 2) & (mean > 0), np.sqrt(np.maximum(var, 0.0)) / mean, np.nan)
    return n, cv


def arrival_tests(t: np.ndarray, span_s: float, *, resolution_s: float = 0.0, seed: int = 0,
                  replicates: int = 199) -> dict[str, NullTest]:
    """The three arrival tests on one simulated trace, as the report would run them.

    ``rate``: :func:`rate_shift_test` on 5-minute windows, against a stationary renewal null
    whose dispersion is that of 5-minute counts within 20-minute blocks (F test); ``shape``:
    :func:`gamma_shape_shift_test` on 20-minute windows; ``burst``: :func:`burstiness_test` at
    :data:`BURST_SCALES` inside 20-minute blocks.
    """
    counts, exposure = window_counts(t, window_s=300.0, t0=0.0, t1=span_s)
    scales = {s: block_counts(t, sub_s=s, block_s=1200.0, t0=0.0, t1=span_s) for s in BURST_SCALES}
    phi, phi_df = within_block_dispersion(scales[300.0])
    rate = rate_shift_test(counts, exposure, seed=seed, dispersion=phi, dispersion_df=phi_df)
    n, mean, mlog, zeros = window_gap_stats(t, window_s=1200.0)
    shape = gamma_shape_shift_test(n, mean, mlog, n_zero_gaps=zeros, seed=seed, replicates=replicates,
                                   resolution_s=resolution_s)
    burst = burstiness_test(scales, resolution_s=resolution_s)
    return {"rate": rate, "shape": shape, "burst": burst}
