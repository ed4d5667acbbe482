"""Tests of servelab.analysis.bursts against independent numpy computations."""
import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from servelab.analysis import bursts as B
from servelab.analysis import write_store


def _reference(counts, ratio=2.0, min_prev=1):
    """A plain loop over windows (the definition, written out), for a hand-built series."""
    bursts, eligible, idle = 0, 0, 0
    for k in range(1, len(counts)):
        if counts[k - 1] >= min_prev:
            eligible += 1
            bursts += counts[k] >= ratio * counts[k - 1]
        if counts[k - 1] == 0 and counts[k] > 0:
            idle += 1
    return bursts, eligible, idle


def test_doubling_mask_on_a_hand_built_series():
    counts = [4, 8, 3, 0, 5, 10, 21, 20, 1, 2, 1]
    burst, eligible, from_idle = B.doubling_mask(counts)
    assert np.flatnonzero(burst).tolist() == [1, 5, 6, 9]  # 8>=2*4, 10>=2*5, 21>=2*10, 2>=2*1
    assert np.flatnonzero(from_idle).tolist() == [4]  # 0 -> 5 is not a doubling: no defined ratio
    assert not eligible[0] and not eligible[4]
    assert (int(burst.sum()), int(eligible.sum()), int(from_idle.sum())) == _reference(counts)
    b3, _, _ = B.doubling_mask(counts, ratio=3.0, min_prev=2)
    assert np.flatnonzero(b3).tolist() == []  # 8 < 12, 10 < 15, 21 < 30


def test_burst_counts_match_numpy_on_store(tmp_path, rng):
    # 2 days of arrivals with a few injected surges; compare with np.histogram + the loop
    ts = np.concatenate([rng.uniform(0, 2 * 86400, 20_000), rng.uniform(3000, 3300, 400), rng.uniform(90000, 90600, 900)])
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s")
    got = B.burst_counts(store)
    for h in (300.0, 600.0):
        edges = np.arange(0, np.floor(ts.max() / h) * h + h + 1, h)
        counts, _ = np.histogram(ts, bins=edges)
        bursts, eligible, idle = _reference(counts.tolist())
        row = got.filter(pl.col("horizon_s") == h).row(0, named=True)
        assert (row["n_bursts"], row["n_eligible"], row["n_from_idle"]) == (bursts, eligible, idle)
        assert row["n_windows"] == counts.size
        assert row["burst_share"] == pytest.approx(bursts / eligible)
        assert row["bursts_per_day"] == pytest.approx(bursts / (eligible * h / 86400))
        assert row["workday_bursts_per_day"] is None  # no origin: workdays unknown


def test_workday_rate_uses_local_weekdays(tmp_path, rng):
    # origin Friday 2023-11-10 00:00 UTC; 3 days: Friday (workday), Saturday, Sunday
    ts = rng.uniform(0, 3 * 86400, 30_000)
    origin = dt.datetime(2023, 11, 10, tzinfo=ZoneInfo("UTC"))
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s", origin=origin, timezone="UTC")
    row = B.burst_counts(store, horizons_s=(300,)).row(0, named=True)
    counts, _ = np.histogram(ts, bins=np.arange(0, 3 * 86400 + 1, 300))
    burst, eligible, _ = B.doubling_mask(counts)
    friday = np.arange(counts.size) < 288
    assert row["workday_bursts_per_day"] == pytest.approx(burst[friday].sum() / (eligible[friday].sum() * 300 / 86400))


def test_poisson_reference_share_matches_simulation():
    # closed form vs 200,000 simulated pairs of iid Poisson windows: binomial sd of a share p is
    # sqrt(p(1-p)/n) <= 0.0011 at this n (fewer eligible pairs at lam=1), so 0.006 is > 5 sd
    sim = np.random.default_rng(7)
    for lam in (1.0, 4.0, 12.0):
        a, b = sim.poisson(lam, 200_000), sim.poisson(lam, 200_000)
        ok = a >= 1
        assert B.poisson_burst_share(lam) == pytest.approx(np.mean(b[ok] >= 2 * a[ok]), abs=0.006)
    assert B.poisson_burst_share(400.0) < 1e-20
    assert np.isnan(B.poisson_burst_share(0.0))


def test_ratio_histogram_sums_to_bursts(tmp_path, rng):
    ts = rng.uniform(0, 86400, 3000)
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s")
    hist = B.burst_ratio_histogram(store, horizon_s=300)
    total = B.burst_counts(store, horizons_s=(300,))["n_bursts"][0]
    assert hist["n_bursts"].sum() == total
    assert hist["share"].sum() == pytest.approx(1.0)


def test_idle_trace_has_no_eligible_windows(tmp_path):
    # two requests 2 h apart: every 5-min window between them is idle
    store = write_store(pl.DataFrame({"timestamp": [0.0, 7200.0]}), tmp_path / "s")
    row = B.burst_counts(store, horizons_s=(300,)).row(0, named=True)
    assert row["n_eligible"] == 1 and row["n_bursts"] == 0 and row["n_from_idle"] == 1
    one = write_store(pl.DataFrame({"timestamp": [5.0]}), tmp_path / "one")
    row = B.burst_counts(one, horizons_s=(300,)).row(0, named=True)
    assert row["n_eligible"] == 0 and row["burst_share"] is None and row["bursts_per_day"] is None


def test_bad_settings():
    with pytest.raises(ValueError, match="ratio must be > 1"):
        B.doubling_mask([1, 2], ratio=1.0)
    with pytest.raises(ValueError, match="min_prev must be an integer >= 1"):
        B.doubling_mask([1, 2], min_prev=0)
    with pytest.raises(ValueError, match="non-negative"):
        B.doubling_mask([1, -2])
