"""``upsampling.window_cv`` (numpy bincount per window) against the frame path it replaced:
``arrivals.window_stats`` on ``arrivals.arrival_frame_from_times`` (DuckDB over a polars frame),
on small arrays with a coarse clock (ties, jitter), continuous times, windows that gaps cross,
idle windows and a single arrival; and against a hand count on a tiny array."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from servelab.analysis.arrivals import arrival_frame_from_times, window_stats
from servelab.analysis.upsampling import window_cv

_COLUMNS = ["window", "window_start_s", "exposure_s", "n_requests", "rate_rps", "n_gaps", "cv"]


def _frame_path(t: np.ndarray, window_s: float) -> pl.DataFrame:
    frame = arrival_frame_from_times(t)
    return window_stats(None, window_s=window_s, by=None, fill_idle=True, frame=frame).select(_COLUMNS)


def _assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.dtypes == b.dtypes
    for col in a.columns:
        x, y = a[col].to_numpy().astype(float), b[col].to_numpy().astype(float)
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=col)
        # sums in another order: a few ulps (gaps of one window have CVs near 1, no cancellation)
        np.testing.assert_allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=1e-12, atol=0, err_msg=col)


@pytest.mark.parametrize("case", ["ms_clock_with_ties", "continuous", "bursty_idle_windows", "one_arrival"])
def test_window_cv_equals_the_frame_path(case):
    rng = np.random.default_rng(7)
    if case == "ms_clock_with_ties":  # a detected 1 ms clock, ties at it: the jittered path
        t = np.round(np.cumsum(rng.exponential(0.004, 3000)), 3)
    elif case == "continuous":
        t = np.cumsum(rng.exponential(0.7, 3000)) + 0.123456789
    elif case == "bursty_idle_windows":  # bursts separated by idle windows; unsorted input
        t = np.concatenate([b + rng.exponential(0.2, 200).cumsum() for b in (5.0, 400.0, 1310.0)])
        rng.shuffle(t)
    else:
        t = np.array([42.5])
    new, old = window_cv(t, window_s=60.0), _frame_path(t, 60.0)
    _assert_same(new, old)
    if case == "ms_clock_with_ties":  # the clock censored: the CVs are the jittered gaps' (none is null)
        assert new.filter(pl.col("n_gaps") >= 2)["cv"].null_count() == 0
    if case == "bursty_idle_windows":
        assert (new["n_requests"] == 0).sum() > 10 and new["n_requests"].sum() == t.size


def test_window_cv_counts_a_gap_only_inside_one_window():
    # exact gaps (clock=None; "auto" would find a 1-s clock and jitter them): 1, 2, 4 | 11, 16 in
    # 10-s windows; the 4 -> 11 gap crosses the edge
    got = window_cv(np.array([16.0, 1.0, 4.0, 11.0, 2.0]), window_s=10.0, clock=None)
    assert got["n_requests"].to_list() == [3, 2]
    assert got["n_gaps"].to_list() == [2, 1]
    gaps = np.array([1.0, 2.0])
    assert got["cv"][0] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-12)
    assert got["cv"][1] is None  # one gap: no CV
    # exposure: the span is [1, 16]: 9 s of the first window, 6 s of the second
    assert got["exposure_s"].to_list() == [9.0, 6.0]
    assert got["rate_rps"].to_list() == pytest.approx([3 / 9, 2 / 6])


def test_window_cv_rejects_bad_input():
    with pytest.raises(ValueError, match="timestamps is empty"):
        window_cv(np.array([]), window_s=60.0)
    with pytest.raises(ValueError, match="timestamps must be finite; got nan"):
        window_cv(np.array([1.0, np.nan]), window_s=60.0)
    with pytest.raises(ValueError, match="window_s must be a positive number of seconds; got 0"):
        window_cv(np.array([1.0, 2.0]), window_s=0)
