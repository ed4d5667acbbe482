"""analysis.lengths against numpy / scipy / statsmodels on small seeded stores."""
import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis import NotApplicableError, write_store
from servelab.analysis import lengths as L

ORIGIN = dt.datetime(2025, 3, 3, 0, 0, tzinfo=dt.timezone.utc)


def _frame(rng, n=20_000, *, origin_hour=0.0):
    t = np.sort(rng.uniform(0, 86_400, n))
    hour = ((t / 3600.0) + origin_hour) % 24
    morning = (hour >= 6) & (hour < 12)
    inp = np.maximum(np.round(np.exp(5 + rng.standard_normal(n)) * np.where(morning, 2.0, 1.0)), 1).astype(np.int64)
    out = np.maximum(np.round(0.2 * inp + rng.exponential(200, n)), 1).astype(np.int64)
    out[rng.random(n) < 0.03] = 0  # failures
    model = np.where(rng.random(n) < 0.5, "A", "B")
    return pl.DataFrame({"timestamp": t, "model": model, "input_tokens": inp, "output_tokens": out,
                         "failed": out == 0})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # written once for the module (the tests only read it); the conftest rng's seed, so the same rows
    return write_store(_frame(np.random.default_rng(20251123)), tmp_path_factory.mktemp("lengths") / "s",
                       origin=ORIGIN, timezone="UTC")


def _valid(store):
    f = store.to_polars()
    return f.filter(pl.col("output_tokens") != 0)


def test_counts_exclude_and_count_failures(store):
    f = store.to_polars()
    c = L.length_counts(store).row(0, named=True)
    n_fail = int((f["output_tokens"] == 0).sum())
    assert c["n_requests"] == f.height and c["n_failed"] == n_fail == c["n_output_zero"] == c["n_failed_flag"]
    assert c["n_used"] == f.height - n_fail


def test_quantiles_match_numpy(store):
    v = _valid(store)
    q = L.length_quantiles(store)
    for col in ("input_tokens", "output_tokens"):
        row = q.filter(pl.col("column") == col).row(0, named=True)
        x = v[col].to_numpy()
        assert row["n"] == x.size
        assert row["mean"] == pytest.approx(x.mean()) and row["std"] == pytest.approx(x.std())
        for p in (0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
            assert row[L._qname(p)] == pytest.approx(np.quantile(x, p))
        assert (row["min"], row["max"]) == (x.min(), x.max())
    by = L.length_quantiles(store, by="model")
    for m in ("A", "B"):
        x = v.filter(pl.col("model") == m)["input_tokens"].to_numpy()
        row = by.filter((pl.col("group") == m) & (pl.col("column") == "input_tokens")).row(0, named=True)
        assert row["p50"] == pytest.approx(np.median(x))


def test_weighted_quantiles_equal_expanded_numpy(rng):
    values = np.sort(rng.choice(1000, 50, replace=False)).astype(float)
    counts = rng.integers(1, 40, 50)
    qs = [0.0, 0.013, 0.25, 0.5, 0.9, 0.999, 1.0]
    np.testing.assert_allclose(L.weighted_quantiles(values, counts, qs), np.quantile(np.repeat(values, counts), qs))


def test_pmf_exact_and_log_binned(store):
    v = _valid(store)["output_tokens"].to_numpy()
    pmf = L.length_pmf(store, "output_tokens")
    vals, cnts = np.unique(v, return_counts=True)
    np.testing.assert_array_equal(pmf["value"].to_numpy(), vals)
    np.testing.assert_array_equal(pmf["count"].to_numpy(), cnts)
    assert pmf["probability"].sum() == pytest.approx(1.0)
    binned = L.length_pmf(store, "output_tokens", log_bins=30)
    assert binned["count"].sum() == v.size and binned["probability"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="log_bins must be None or a positive int; got 0"):
        L.length_pmf(store, "output_tokens", log_bins=0)
    # from the value counts read once (one scan for the quantiles, both PMFs and the sample sizes):
    # the same tables as from the requests
    counts = L.length_value_counts(store)
    assert set(counts["col"]) == {"input_tokens", "output_tokens"}
    assert int(counts.filter(pl.col("col") == "output_tokens")["c"].sum()) == v.size
    for column in ("input_tokens", "output_tokens"):
        for bins in (1, 30):
            assert L.length_pmf(store, column, log_bins=bins, counts=counts).equals(
                L.length_pmf(store, column, log_bins=bins))
    assert L.length_quantiles(store, counts=counts).equals(L.length_quantiles(store))
    assert np.array_equal(L.length_sample(store, "input_tokens", max_n=2_000, seed=4, n=v.size),
                          L.length_sample(store, "input_tokens", max_n=2_000, seed=4))


def test_io_bins_match_numpy(store):
    v = _valid(store)
    x, y = v["input_tokens"].to_numpy(), v["output_tokens"].to_numpy()
    n_bins = 12
    width = np.log(x.max() + 1.0) / n_bins
    k = np.minimum(n_bins - 1, np.floor(np.log(x + 1.0) / width)).astype(int)
    table = L.io_bins(store, n_bins=n_bins)
    assert table["n"].sum() == x.size
    for row in table.iter_rows(named=True):
        sel = y[k == row["bin"]]
        assert row["n"] == sel.size
        assert row["output_median"] == pytest.approx(np.median(sel))
        assert row["output_p5"] == pytest.approx(np.quantile(sel, 0.05))
        assert row["output_p95"] == pytest.approx(np.quantile(sel, 0.95))
        assert row["input_median"] == pytest.approx(np.median(x[k == row["bin"]]))


def test_io_correlation_matches_scipy_and_statsmodels(store):
    import statsmodels.api as sm

    v = _valid(store)
    x, y = v["input_tokens"].to_numpy().astype(float), v["output_tokens"].to_numpy().astype(float)
    row = L.io_correlation(store).row(0, named=True)
    assert row["n"] == x.size == row["spearman_n"]
    assert row["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-9)
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    assert row["slope"] == pytest.approx(ols.params[1], rel=1e-9)
    assert row["intercept"] == pytest.approx(ols.params[0], rel=1e-9)
    assert row["r2"] == pytest.approx(ols.rsquared, rel=1e-9)
    sub = L.io_correlation(store, spearman_max_n=5_000).row(0, named=True)
    assert 3_500 < sub["spearman_n"] < 6_500 and sub["pearson"] == pytest.approx(row["pearson"])
    assert abs(sub["spearman"] - row["spearman"]) < 4 / np.sqrt(sub["spearman_n"])


def test_shifts_across_periods(store):
    v = _valid(store)
    hour = (v["timestamp"].to_numpy() / 3600.0) % 24
    sh = L.length_shifts(store)
    assert sh.table["period"].to_list() == ["Midnight", "Morning", "Afternoon"]
    means_in = [v["input_tokens"].to_numpy()[(hour >= a) & (hour < b)].mean() for a, b in ((0, 6), (6, 12), (12, 18))]
    means_out = [v["output_tokens"].to_numpy()[(hour >= a) & (hour < b)].mean() for a, b in ((0, 6), (6, 12), (12, 18))]
    np.testing.assert_allclose(sh.table["mean_input"].to_numpy(), means_in)
    assert sh.input_ratio == pytest.approx(max(means_in) / min(means_in))
    assert sh.output_ratio == pytest.approx(max(means_out) / min(means_out))
    assert sh.input_ratio > 1.8  # mornings have inputs twice as long
    assert sh.input_change == pytest.approx(means_in[-1] / means_in[0] - 1)


def test_periods_follow_the_origin_clock(tmp_path, rng):
    # origin at 22:00 local: timestamp 0 is 22:00, so the first two hours are not Midnight
    origin = dt.datetime(2025, 3, 3, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    s = write_store(_frame(rng, 5_000, origin_hour=22.0), tmp_path / "o", origin=origin)
    f = s.to_polars().filter(pl.col("output_tokens") != 0)
    hour = (f["timestamp"].to_numpy() / 3600.0 + 22.0) % 24
    sh = L.length_shifts(s, periods=[L.Period("late", 22, 2), L.Period("morning", 6, 12)])
    late = sh.table.filter(pl.col("period") == "late")
    assert late["n"][0] == int(np.sum((hour >= 22) | (hour < 2)))
    assert late["mean_input"][0] == pytest.approx(f["input_tokens"].to_numpy()[(hour >= 22) | (hour < 2)].mean())


def test_bad_arguments_and_missing_columns(store, tmp_path):
    with pytest.raises(ValueError, match="by must be None or one of"):
        L.length_quantiles(store, by="colour")
    with pytest.raises(NotApplicableError, match="'service'"):
        L.length_quantiles(store, by="service")
    with pytest.raises(ValueError, match="start_hour must be in"):
        L.Period("bad", -1, 3)
    with pytest.raises(ValueError, match="quantiles must be"):
        L.length_quantiles(store, quantiles=[1.5])
    with pytest.raises(ValueError, match="distinct"):
        L.length_shifts(store, periods=[L.Period("a", 0, 1), L.Period("a", 2, 3)])
    bare = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "bare")
    with pytest.raises(NotApplicableError, match="input_tokens"):
        L.length_counts(bare)
    with pytest.raises(NotApplicableError, match="input_tokens"):
        L.io_correlation(bare)


def test_all_null_and_all_failed_columns(tmp_path):
    frame = pl.DataFrame({"timestamp": [0.0, 1.0, 2.0], "input_tokens": [5, 6, 7],
                          "output_tokens": pl.Series([None, None, None], dtype=pl.Int64)})
    s = write_store(frame, tmp_path / "nulls")
    c = L.length_counts(s).row(0, named=True)
    assert c["n_output_null"] == 3 and c["n_used"] == 0
    q = L.length_quantiles(s)
    assert q["column"].to_list() == ["input_tokens"]  # the all-null column has no row, the other is intact
    with pytest.raises(NotApplicableError, match="no non-failed request has a output_tokens value"):
        L.length_sample(s, "output_tokens")
    with pytest.raises(NotApplicableError, match="no non-failed request has both lengths"):
        L.io_bins(s)
    failed = write_store(frame.with_columns(pl.lit(0, pl.Int64).alias("output_tokens")), tmp_path / "failed")
    c = L.length_counts(failed).row(0, named=True)
    assert c["n_failed"] == 3 and c["n_used"] == 0


def test_length_sample_is_deterministic(store):
    a = L.length_sample(store, "input_tokens", max_n=2_000, seed=4)
    b = L.length_sample(store, "input_tokens", max_n=2_000, seed=4)
    c = L.length_sample(store, "input_tokens", max_n=2_000, seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 1_500 < a.size < 2_500
    full = L.length_sample(store, "input_tokens", max_n=None)
    assert full.size == _valid(store).height


def test_io_bins_by_period_with_the_whole_trace_in_one_scan(store):
    both = L.io_bins(store, n_bins=10, by="period", include_all=True)
    alone = L.io_bins(store, n_bins=10)
    assert both.filter(pl.col("group") == "all").drop("group").equals(alone.drop("group"))
    v = _valid(store)
    hour = (v["timestamp"].to_numpy() / 3600.0) % 24
    morning = both.filter(pl.col("group") == "Morning")
    assert morning["n"].sum() == int(np.sum((hour >= 6) & (hour < 12)))
    assert set(both["group"]) == {"all", "Midnight", "Morning", "Afternoon"}
