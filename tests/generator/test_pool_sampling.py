"""sample_requests: Poisson counts at the pool's rates, in-window gap shape, PMF draws, determinism."""
from __future__ import annotations


import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.generator import PoolSpanError, read_servegen, sample_requests
from servelab.generator.sampling import draw_from_pmfs


@pytest.fixture(scope="module")
def mm(raw_traces):
    return read_servegen(raw_traces / "servegen" / "mm-image")


@pytest.fixture(scope="module")
def r1(raw_traces):
    return read_servegen(raw_traces / "servegen" / "deepseek-r1")


def test_counts_are_poisson_at_the_pool_rate(r1):
    trace = sample_requests(r1, seed=1)
    arr = r1.arrivals
    expected = float((arr["rate"] * arr["window_s"]).sum())
    # total count ~ Poisson(expected): 4 sigma
    assert abs(trace.height - expected) < 4 * np.sqrt(expected)
    # per client and window: standardised residuals have mean 0 and variance 1 (Poisson)
    got = (trace.with_columns(((pl.col("timestamp") / 600).floor() * 600).alias("window_start"))
           .group_by("client_id", "window_start").len())
    joined = arr.filter(pl.col("rate") > 0).join(got, on=["client_id", "window_start"], how="left").with_columns(
        pl.col("len").fill_null(0))
    lam = (joined["rate"] * 600).to_numpy()
    z = (joined["len"].to_numpy() - lam) / np.sqrt(lam)
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n) + 0.1  # + small allowance for tiny-lambda skew
    assert trace["timestamp"].is_sorted()
    assert trace["timestamp"].min() >= 0 and trace["timestamp"].max() < 86400
    assert trace["request_id"].to_list() == list(range(trace.height))


def test_partial_window_and_sub_span(r1):
    trace = sample_requests(r1, start=36300.0, duration=900.0, seed=2)
    assert trace["timestamp"].min() >= 36300.0 and trace["timestamp"].max() < 37200.0
    arr = r1.arrivals
    rate = lambda w: float(arr.filter(pl.col("window_start") == w)["rate"].sum())
    expected = 300 * rate(36000.0) + 600 * rate(36600.0)
    assert abs(trace.height - expected) < 4 * np.sqrt(expected)
    with pytest.raises(PoolSpanError, match="must lie inside"):
        sample_requests(r1, start=86000, duration=1000, seed=0)
    with pytest.raises(PoolSpanError, match="duration must be > 0"):
        sample_requests(r1, start=0, duration=0, seed=0)


def test_gap_cv_matches_the_window_cv(msmall):
    # client 14 runs at ~190 req/s with Gamma / Weibull gaps of CV ~ 1.4-1.8
    windows = msmall.arrivals.filter((pl.col("client_id") == "14") & (pl.col("window_start") >= 646800)
                                     & (pl.col("window_start") < 646800 + 6 * 600))
    trace = sample_requests(msmall, start=646800, duration=3600, seed=3, clients=["14"])
    t = trace["timestamp"].to_numpy()
    w = np.floor(t / 600)
    cvs = []
    for k in np.unique(w):  # six windows
        g = np.diff(t[w == k])
        cvs.append(g.std() / g.mean())
    # n ~ 110,000 gaps per window; the CV estimate's sampling error is a few per cent
    np.testing.assert_allclose(cvs, windows.sort("window_start")["cv"].to_numpy(), rtol=0.1)


def _pmf(pool, cid, w, field):
    p = pool.data.filter((pl.col("client_id") == cid) & (pl.col("window_start") == w) & (pl.col("field") == field))
    return p.sort("value")


def test_fields_follow_their_pmfs_independently(r1):
    trace = sample_requests(r1, seed=4, clients=["35"])
    part = trace.filter((pl.col("timestamp") >= 21600) & (pl.col("timestamp") < 43200))
    n = part.height
    assert n > 20000
    for field in ("input_tokens", "output_tokens"):
        pmf = _pmf(r1, "35", 21600.0, field)
        cdf = np.cumsum(pmf["probability"].to_numpy())
        x = np.sort(part[field].to_numpy())
        ecdf = np.searchsorted(x, pmf["value"].to_numpy(), side="right") / n
        assert np.max(np.abs(ecdf - cdf)) < 1.63 / np.sqrt(n)  # KS 1% critical value
    # independent draws: no rank correlation between input and output within one client-window
    rho = stats.spearmanr(part["input_tokens"], part["output_tokens"]).statistic
    assert abs(rho) < 4 / np.sqrt(n)
    # reason tokens = round(ratio * output) with the ratio's PMF
    ratio = part["reason_tokens"].to_numpy() / part["output_tokens"].to_numpy()
    pmf = _pmf(r1, "35", 21600.0, "reason_ratio")
    mean_ratio = float((pmf["value"] * pmf["probability"]).sum())
    assert abs(ratio.mean() - mean_ratio) < 4 * ratio.std() / np.sqrt(n) + 1e-3
    assert (part["reason_tokens"] <= part["output_tokens"]).all()


def test_multimodal_tokens_are_per_item_times_count(mm):
    trace = sample_requests(mm, start=0, duration=3600, seed=5)
    assert trace.height > 1000
    per_item = set()
    for cid in mm.client_ids:
        per_item |= set(_pmf(mm, cid, 0.0, "image_tokens")["value"].to_list())
    has = trace.filter(pl.col("image_count") > 0)
    ratio = (has["image_tokens"] / has["image_count"]).to_numpy()
    assert np.all(np.isin(ratio, np.array(sorted(per_item))))
    assert (trace.filter(pl.col("image_count") == 0)["image_tokens"] == 0).all()
    total = trace["text_tokens"] + trace["image_tokens"] + trace["audio_tokens"] + trace["video_tokens"]
    assert (trace["input_tokens"] == total).all()


def test_missing_data_client_gets_nulls_and_same_seed_same_bytes(msmall):
    a = sample_requests(msmall, start=74400, duration=7200, seed=9)
    b = sample_requests(msmall, start=74400, duration=7200, seed=9)
    c = sample_requests(msmall, start=74400, duration=7200, seed=10)
    assert a.equals(b) and not a.equals(c)
    no_data = a.filter(pl.col("client_id") == "1")
    assert no_data.height > 0 and no_data["input_tokens"].null_count() == no_data.height
    assert a.filter(pl.col("client_id") == "14")["input_tokens"].null_count() == 0


def test_draw_from_pmfs_against_closed_form(rng):
    pmfs = pl.DataFrame({"gid": [0, 0, 0, 1, 1], "value": [1.0, 2.0, 5.0, 10.0, 20.0],
                         "probability": [0.2, 0.0, 0.8, 0.5, 0.5]})
    group = np.repeat([0, 1], 50000)
    x = draw_from_pmfs(pmfs, group, rng)
    a, b = x[:50000], x[50000:]
    assert set(np.unique(a)) == {1.0, 5.0}  # zero-probability value never drawn
    assert abs((a == 1.0).mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 50000)
    assert abs((b == 10.0).mean() - 0.5) < 4 * np.sqrt(0.25 / 50000)
