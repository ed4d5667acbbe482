"""One definition of a window's rate (over the covered time), used by analysis, pool fitting and compare."""
import numpy as np
import polars as pl
import pytest

from servelab.analysis.arrivals import window_stats as arrival_windows
from servelab.analysis.fidelity import window_stats as fidelity_windows
from servelab.analysis.store import write_store
from servelab.analysis.window_rates import (
    covered_span,
    exposure,
    full_enough,
    window_cv,
    window_index,
    window_rate,
)
from servelab.fitting.pool_fit import fit_pool


def test_closed_forms_of_exposure_rate_and_cv():
    starts = np.array([0.0, 600.0, 1200.0, 1800.0])
    e = exposure(starts, 600, (100.0, 1300.0))
    np.testing.assert_array_equal(e, [500.0, 600.0, 100.0, 0.0])
    r = window_rate([250, 600, 50, 0], e)
    np.testing.assert_array_equal(r[:3], [0.5, 1.0, 0.5])
    assert np.isnan(r[3])
    np.testing.assert_array_equal(window_index([0.0, 599.999, 600.0, -0.5], 600), [0, 0, 1, -1])
    cv = window_cv([1, 2, 5, 5], [1.0, 1.0, 0.0, 2.0], [0.5, 0.5, 0.0, 1.0])
    assert np.isnan(cv[0]) and cv[1] == 0.5 and np.isnan(cv[2]) and cv[3] == 0.5
    assert covered_span(100.0, 900.0) == (100.0, 900.0)
    assert covered_span(100.0, 900.0, (0.0, 600.0)) == (0.0, 900.0)
    np.testing.assert_array_equal(full_enough(e, 600), [True, True, False, False])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="window_s must be a positive number of seconds; got 0"):
        exposure([0.0], 0, (0.0, 1.0))
    with pytest.raises(ValueError, match="last >= first"):
        covered_span(5.0, 1.0)
    with pytest.raises(ValueError, match="stated span must be"):
        covered_span(0.0, 1.0, (2.0, 1.0))
    with pytest.raises(ValueError, match="min_fraction must be in"):
        full_enough([1.0], 1.0, 0.0)


def test_three_users_agree_on_the_first_window(tmp_path, rng):
    # 1,000 requests uniform on [100, 1100) s, 600-s windows: the first window [0, 600) is covered
    # from the first request on, so every user divides its count by 600 - first, not by 600
    # (fit_pool used to give 0.833) and does not start windows at the first request (fidelity
    # used to give 0.982 for [100, 700))
    t = np.sort(rng.uniform(100, 1100, 1000))
    frame = pl.DataFrame({"timestamp": t, "client_id": ["a"] * t.size})
    store = write_store(frame, tmp_path / "s")
    n0 = int(np.sum(t < 600))
    truth = n0 / (600 - t.min())
    assert truth == pytest.approx(1.0, abs=4 * np.sqrt(500) / 500)  # the process's own rate is 1/s
    a = arrival_windows(store, window_s="10m").filter(pl.col("window") == 0)["rate_rps"][0]
    pool = fit_pool(store, window_s="10m", conversations=False)
    b = pool.total_rate().filter(pl.col("window_start") == 0.0)["rate"][0]
    c = fidelity_windows(frame, window_s=600.0).filter(pl.col("window") == 0)["rate"][0]
    assert a == pytest.approx(truth, rel=1e-12)
    assert b == pytest.approx(truth, rel=1e-12)
    assert c == pytest.approx(truth, rel=1e-12)
    # the last window [600, 1200) likewise, over [600, last]
    last = pool.total_rate().filter(pl.col("window_start") == 600.0)["rate"][0]
    assert last == pytest.approx(np.sum(t >= 600) / (t.max() - 600), rel=1e-12)
