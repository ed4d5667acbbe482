"""Tests of servelab.analysis.failures against polars / numpy computations."""
import numpy as np
import polars as pl
import pytest
from servelab.analysis import NotApplicableError, write_store
from servelab.analysis import failures as F
from statsmodels.stats.proportion import proportion_confint


@pytest.fixture
def trace(rng):
    n = 20_000
    model = rng.choice(["ChatGPT", "GPT-4"], n, p=[0.8, 0.2])
    p = np.where(model == "ChatGPT", 0.08, 0.02)
    return pl.DataFrame({
        "timestamp": np.sort(rng.uniform(0, 2 * 86400, n)),
        "model": model,
        "service": rng.choice(["conversation", "api"], n),
        "failed": rng.random(n) < p,
    })


def test_rates_match_polars(tmp_path, trace):
    store = write_store(trace, tmp_path / "s")
    got = F.failure_rates(store, by=("model", "service"))
    ref = trace.group_by(["model", "service"]).agg(n=pl.len(), n_failed=pl.col("failed").sum())
    joined = got.join(ref, on=["model", "service"], suffix="_ref")
    assert joined.height == 4
    assert (joined["n"] == joined["n_ref"]).all() and (joined["n_failed"] == joined["n_failed_ref"]).all()
    np.testing.assert_allclose(joined["rate"], joined["n_failed_ref"] / joined["n_ref"])
    # Wilson interval vs statsmodels
    for row in joined.iter_rows(named=True):
        lo, hi = proportion_confint(row["n_failed"], row["n"], method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)


def test_rates_over_time_match_numpy(tmp_path, trace):
    store = write_store(trace, tmp_path / "s")
    got = F.failure_rate_over_time(store, window_s=3600, by="model").filter(pl.col("model") == "GPT-4").sort("bin")
    sub = trace.filter(pl.col("model") == "GPT-4")
    bins = np.floor(sub["timestamp"].to_numpy() / 3600).astype(int)
    n = np.bincount(bins)
    k = np.bincount(bins, weights=sub["failed"].to_numpy().astype(float))
    present = n > 0
    assert got["bin"].to_list() == np.flatnonzero(present).tolist()
    np.testing.assert_allclose(got["rate"].to_numpy(), (k / np.where(present, n, 1))[present])
    spread = F.failure_rate_spread(got, min_requests=50)
    keep = n[present] >= 50
    rates = (k / np.where(present, n, 1))[present][keep]
    assert spread["n_windows"][0] == keep.sum()
    assert spread["mean"][0] == pytest.approx(rates.mean())
    assert spread["std"][0] == pytest.approx(rates.std(ddof=1))
    assert spread["median"][0] == pytest.approx(np.median(rates))


def test_windows_without_requests_are_absent_not_zero(tmp_path):
    frame = pl.DataFrame({"timestamp": [0.0, 10.0, 7300.0], "failed": [True, False, False]})
    got = F.failure_rate_over_time(write_store(frame, tmp_path / "s"), window_s=3600)
    assert got["bin"].to_list() == [0, 2]
    assert got["rate"].to_list() == [0.5, 0.0]
    spread = F.failure_rate_spread(got, min_requests=5)
    assert spread["n_windows"][0] == 0 and spread["mean"][0] is None


def test_no_failed_column_is_not_applicable(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "s")
    with pytest.raises(NotApplicableError, match="failure rates is not applicable: the trace has no 'failed' column"):
        F.failure_rates(store)
    with pytest.raises(NotApplicableError, match="no 'failed' column"):
        F.failure_rate_over_time(store)


def test_bad_arguments(tmp_path, trace):
    store = write_store(trace.head(10), tmp_path / "s")
    with pytest.raises(ValueError, match="window_s must be a positive number"):
        F.failure_rate_over_time(store, window_s=-1)
    with pytest.raises(ValueError, match="min_requests must be an integer >= 1"):
        F.failure_rate_spread(F.failure_rate_over_time(store), min_requests=0)


def test_rates_from_minute_bins_equal_direct_queries(tmp_path, trace):
    from servelab.analysis.periodicity import binned_load, rebin, trace_clock

    store = write_store(trace, tmp_path / "s")
    clock = trace_clock(store)
    bins = binned_load(store, window_s=60, by="model", failed=True, clock=clock)
    cols = ["group", "n", "n_failed", "rate", "ci_low", "ci_high"]
    assert F.rates_from_bins(bins).select(cols).equals(F.failure_rates(store, by="model").select(cols).sort("group"))
    hourly = rebin(bins, from_s=60, to_s=3600, by="model", clock=clock)
    cols = ["group", "bin", "start_s", "n", "n_failed", "rate"]
    assert F.over_time_from_bins(hourly).select(cols).equals(
        F.failure_rate_over_time(store, by="model").select(cols))
