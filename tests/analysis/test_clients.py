"""Client decomposition: ranking, per-client-per-window statistics, stability and mix attribution.

Reference values are computed independently with numpy on the fixture's own arrays; recovery of
known parameters uses tolerances from the sampling error of each statistic.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from servelab.analysis.clients import (
    aggregate_window_stats,
    client_ranking,
    client_stability,
    client_summary,
    client_window_stats,
    decompose_clients,
    mix_attribution,
    rate_variance_shares,
    top_clients_for_share,
)
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import write_store

W = 600.0


def _renewal(rng, rate, cv, start, end):
    """Gamma renewal arrivals with the given rate and CV on [start, end)."""
    a = 1.0 / cv**2
    n_draw = int(rate * (end - start) * 1.5 + 50)
    gaps = rng.gamma(a, 1.0 / (a * rate), n_draw)
    t = start + np.cumsum(gaps)
    return t[t < end]


@pytest.fixture
def three_clients(rng, tmp_path):
    """A (2 rps, CV 2), B (0.5 rps, Poisson), C (0.1 rps, Poisson) over 6 windows, plus a
    one-request client D."""
    parts = []
    spec = {"A": (2.0, 2.0), "B": (0.5, 1.0), "C": (0.1, 1.0)}
    for cid, (rate, cv) in spec.items():
        t = _renewal(rng, rate, cv, 0.0, 6 * W)
        parts.append(pl.DataFrame({"timestamp": t, "client_id": [cid] * t.size,
                                   "input_tokens": rng.integers(10, 1000, t.size),
                                   "output_tokens": rng.integers(1, 500, t.size)}))
    parts.append(pl.DataFrame({"timestamp": [1234.5], "client_id": ["D"], "input_tokens": [7], "output_tokens": [3]}))
    frame = pl.concat(parts)
    store = write_store(frame, tmp_path / "three")
    return store, frame, spec


def test_ranking_and_top_shares_match_numpy(three_clients):
    store, frame, _ = three_clients
    ranking = client_ranking(store)
    counts = frame.group_by("client_id").len().sort("len", descending=True)
    ref = counts["len"].to_numpy()
    assert ranking["client_id"].to_list() == counts["client_id"].to_list()
    np.testing.assert_allclose(ranking["cum_request_share"].to_numpy(), np.cumsum(ref) / ref.sum())
    for share in (0.5, 0.9, 0.999):
        expected = int(np.argmax(np.cumsum(ref) / ref.sum() >= share) + 1)
        assert top_clients_for_share(ranking, share) == expected
    tokens = frame.group_by("client_id").agg((pl.col("input_tokens") + pl.col("output_tokens")).sum().alias("t"))
    top_token = tokens.sort("t", descending=True)["client_id"][0]
    assert ranking.filter(pl.col("rank_tokens") == 1)["client_id"][0] == top_token
    assert top_clients_for_share(ranking, 1.0, by="tokens") == 4
    with pytest.raises(ValueError, match="share must be in"):
        top_clients_for_share(ranking, 1.5)
    with pytest.raises(ValueError, match="by must be"):
        top_clients_for_share(ranking, 0.5, by="bytes")


def test_window_stats_match_numpy_and_recover_parameters(three_clients):
    store, frame, spec = three_clients
    ws = client_window_stats(store, window_s=W)
    for cid, (rate, cv) in spec.items():
        t = np.sort(frame.filter(pl.col("client_id") == cid)["timestamp"].to_numpy())
        w = np.floor(t / W).astype(int)
        rows = ws.filter(pl.col("client_id") == cid).sort("window")
        for row in rows.iter_rows(named=True):
            tw = t[w == row["window"]]
            gaps = np.diff(tw)
            assert row["n_requests"] == tw.size
            if gaps.size >= 2:
                # independent reference: population sd over mean of the within-window gaps
                assert row["cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-9)
            # recovery, in full windows only: the count of a renewal process has variance
            # ~ rate*W*cv^2, so the rate is within 4 sd; the CV's standard error follows from the
            # Gamma kurtosis (3 + 6/a) by the delta method
            if row["exposure_s"] > 0.99 * W:
                assert abs(row["rate_rps"] - rate) <= 4 * math.sqrt(rate * W) * cv / W
                n = row["n_gaps"]
                if n >= 30:
                    a = 1 / cv**2
                    kurt = 3 + 6 / a
                    se = cv * math.sqrt((kurt - 1) / (4 * n) + cv**2 / n)
                    assert abs(row["cv"] - cv) <= 4 * se
        # mean input length per window equals numpy's
        inp = frame.filter(pl.col("client_id") == cid).sort("timestamp")["input_tokens"].to_numpy()
        first = rows.row(0, named=True)
        assert first["mean_input"] == pytest.approx(inp[w == first["window"]].mean())
        assert first["p95_input"] == pytest.approx(np.quantile(inp[w == first["window"]], 0.95))


def test_single_request_client_has_undefined_cv(three_clients):
    store, _, _ = three_clients
    ws = client_window_stats(store, window_s=W)
    d = ws.filter(pl.col("client_id") == "D")
    assert d.height == 1
    assert d["n_requests"][0] == 1 and d["cv"][0] is None and d["n_gaps"][0] == 0
    assert d["rate_rps"][0] == pytest.approx(1 / W, rel=0.01)
    summary = client_summary(ws)
    assert summary.filter(pl.col("client_id") == "D")["cv"][0] is None
    assert summary["request_share"].sum() == pytest.approx(1.0)


def test_no_client_ids_is_not_applicable(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0]}), tmp_path / "anon")
    with pytest.raises(NotApplicableError, match="no 'client_id' column"):
        client_ranking(store)
    with pytest.raises(NotApplicableError, match="client_id"):
        decompose_clients(store)
    empty = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "client_id": [None, None]},
                                     schema={"timestamp": pl.Float64, "client_id": pl.String}), tmp_path / "nulls")
    with pytest.raises(NotApplicableError, match="every row's client_id is empty"):
        client_ranking(empty)


def _two_client_trace(rng, *, mix_shift: bool):
    """Client S (short inputs ~100) and L (long inputs ~1000), 12 windows, Poisson arrivals.

    mix_shift: S's rate goes 3 -> 0.3 rps and L's 0.3 -> 3 rps halfway, behaviour constant.
    Otherwise: rates constant (1 rps each) but S's input length grows fivefold halfway.
    """
    parts = []
    for cid, base_len in (("S", 100), ("L", 1000)):
        for half in (0, 1):
            if mix_shift:
                rate = (3.0, 0.3)[half] if cid == "S" else (0.3, 3.0)[half]
                mean_len = base_len
            else:
                rate = 1.0
                mean_len = base_len * (5 if (cid == "S" and half == 1) else 1)
            t = _renewal(rng, rate, 1.0, half * 6 * W, (half + 1) * 6 * W)
            parts.append(pl.DataFrame({"timestamp": t, "client_id": [cid] * t.size,
                                       "input_tokens": rng.poisson(mean_len, t.size),
                                       "output_tokens": rng.poisson(50, t.size)}))
    return pl.concat(parts)


def test_attribution_separates_mix_from_behaviour(rng, tmp_path):
    mix_store = write_store(_two_client_trace(rng, mix_shift=True), tmp_path / "mix")
    beh_store = write_store(_two_client_trace(rng, mix_shift=False), tmp_path / "beh")
    for store, mix_high in ((mix_store, True), (beh_store, False)):
        ws = client_window_stats(store, window_s=W)
        agg = aggregate_window_stats(store, window_s=W)
        att = mix_attribution(ws, agg).filter(pl.col("statistic") == "mean_input").row(0, named=True)
        assert att["r2_full_levels"] == pytest.approx(1.0, abs=1e-9)  # exact recomposition
        if mix_high:
            assert att["r2_mix_levels"] > 0.9 and att["r2_behaviour_levels"] < 0.3
        else:
            assert att["r2_mix_levels"] < 0.3 and att["r2_behaviour_levels"] > 0.9
        assert att["noise_share"] < 0.1  # the shift is far above the sampling noise


def test_rate_variance_shares_are_exact_covariances(rng, tmp_path):
    store = write_store(_two_client_trace(rng, mix_shift=True), tmp_path / "mix")
    ws = client_window_stats(store, window_s=W)
    agg = aggregate_window_stats(store, window_s=W)
    shares = rate_variance_shares(ws, agg)
    assert shares["rate_variance_share"].sum() == pytest.approx(1.0)
    # numpy reference: cov(r_c, R) / var(R) over the full windows
    full = agg.filter(pl.col("exposure_s") >= 0.5 * W)
    R = full["rate_rps"].to_numpy()
    for cid in ("S", "L"):
        r = (full.select("window").join(ws.filter(pl.col("client_id") == cid).select("window", "rate_rps"),
                                        on="window", how="left").fill_null(0.0)["rate_rps"].to_numpy())
        ref = np.cov(r, R, ddof=0)[0, 1] / R.var()
        assert shares.filter(pl.col("client_id") == cid)["rate_variance_share"][0] == pytest.approx(ref)


def test_stability_ratio_matches_numpy_and_flags_unstable_rate(rng, tmp_path):
    store = write_store(_two_client_trace(rng, mix_shift=True), tmp_path / "mix")
    ws = client_window_stats(store, window_s=W)
    st = client_stability(ws, min_requests=10)
    s_rate = ws.filter((pl.col("client_id") == "S") & (pl.col("n_requests") >= 10))["rate_rps"].to_numpy()
    row = st.filter((pl.col("client_id") == "S") & (pl.col("statistic") == "rate_rps")).row(0, named=True)
    assert row["within_sd"] == pytest.approx(np.std(np.log10(s_rate), ddof=1))
    # S's rate moves 10x while its input length only by noise: rate is the unstable statistic
    s_len = st.filter((pl.col("client_id") == "S") & (pl.col("statistic") == "mean_input"))["within_sd"][0]
    assert row["within_sd"] > 10 * s_len
    with pytest.raises(ValueError, match="min_requests must be >= 1"):
        client_stability(ws, min_requests=0)
    with pytest.raises(ValueError, match="not columns of window_stats"):
        client_stability(ws, statistics=("bogus",))


def test_window_argument_is_checked(three_clients):
    store, _, _ = three_clients
    with pytest.raises(ValueError, match="window_s must be a positive"):
        client_window_stats(store, window_s=0)
    with pytest.raises(ValueError, match="window_s must be a positive"):
        client_window_stats(store, window_s="ten")


def test_decomposition_recovers_pool_clients(tmp_path, raw_traces):
    """Sample a client-tagged trace from ServeGen's deepseek-r1 pool slice (shipped) and recover
    each client's rate and CV per window and its share."""
    from servelab.generator import read_servegen, sample_requests

    pool = read_servegen(raw_traces / "servegen" / "deepseek-r1")
    start, duration = 7200.0, 3 * 3600.0
    trace = sample_requests(pool, start=start, duration=duration, seed=7)
    store = write_store(trace.drop("request_id"), tmp_path / "pool")
    d = decompose_clients(store, window_s=pool.window_s)
    truth = (pool.lazy("arrivals").collect()
             .filter((pl.col("window_start") >= start) & (pl.col("window_start") < start + duration) & (pl.col("rate") > 0))
             .with_columns(window=(pl.col("window_start") / pool.window_s).cast(pl.Int64)))
    got = truth.join(d.window_stats, on=["client_id", "window"], how="left")
    L = pool.window_s
    # counts are Poisson with mean rate * L (the sampler's contract): 4 sd
    tol = 4 * (got["rate"] * L).sqrt() / L + 1e-9
    measured = got["rate_rps"].fill_null(0.0)
    assert ((measured - got["rate"]).abs() <= tol).all()
    # CV in Gamma windows with enough gaps; SE from the Gamma kurtosis (delta method)
    g = got.filter((pl.col("family") == "gamma") & (pl.col("n_gaps") >= 200) & (pl.col("cv") < 4))
    assert g.height >= 10
    a = 1 / g["cv"] ** 2
    kurt = 3 + 6 / a
    se = g["cv"] * ((kurt - 1) / (4 * g["n_gaps"]) + g["cv"] ** 2 / g["n_gaps"]).sqrt()
    assert ((g["cv_right"] - g["cv"]).abs() <= 4 * se).all()
    # shares: expected from the pool's rates; multinomial sd of a share
    expected = truth.group_by("client_id").agg((pl.col("rate") * L).sum().alias("mu"))
    expected = expected.with_columns(p=pl.col("mu") / pl.col("mu").sum())
    n = trace.height
    j = expected.join(d.ranking, on="client_id")
    assert ((j["request_share"] - j["p"]).abs() <= 4 * (j["p"] * (1 - j["p"]) / n).sqrt() + 1e-9).all()
