"""Per-client generation: rate, shares, counts, CV, data dependence, conversations, errors.

Reference values are closed forms (target x window, pool shares, the family's CV, the PMFs);
tolerances are stated next to each check and shrink like 1/sqrt(n).
"""
from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import special, stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.generator.exceptions import GenerationError
from servelab.generator.generate import (
    generate,
    rate_table,
    read_rate_file,
    renewal_arrivals,
)

PMF_IN = ([10, 100, 1000, 5000], [0.1, 0.4, 0.3, 0.2])
PMF_OUT = ([5, 50, 500], [0.3, 0.5, 0.2])


def _pool(rates, **kw):
    pmfs = {c: {"input_tokens": PMF_IN, "output_tokens": PMF_OUT} for c in rates}
    return make_pool(rates, pmfs=pmfs, **kw)


def test_count_per_window_matches_target_within_poisson_error():
    # exponential clients: the superposition is Poisson, so a 600 s count has sd sqrt(rate * 600)
    pool = _pool({"a": [1.0] * 6, "b": [3.0] * 6}, families={"a": "exponential", "b": "exponential"})
    df = generate(pool, 5.0, 3600, seed=1)
    counts = np.bincount((df["timestamp"].to_numpy() // 600).astype(int), minlength=6)
    expected = 5.0 * 600
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), counts
    # over all six windows the total is within 4 sd of 18,000
    assert abs(counts.sum() - 18000) < 4 * np.sqrt(18000)


def test_no_request_lost_per_client_window():
    # 7.5 expected requests per 600 s window for 2,016 windows (14 days): ServeGen's fixed
    # int(rate * window) count gives 7 per window (1,008 requests short, 8 sd); a random count
    # with exact mean keeps the total at 15,120 within Poisson error (sd 123)
    rate = 7.5 / 600
    pool = _pool({"a": [rate] * 2016}, families={"a": "exponential"})
    df = generate(pool, "pool", 2016 * 600, seed=2)
    assert abs(df.height - 15120) < 4 * np.sqrt(15120)


def test_renewal_counts_have_exact_mean_for_bursty_and_regular_families(rng):
    # stationary renewal: E[count in T] = rate * T for any family; check Gamma CV 3, Weibull c=0.6
    # and a regular Gamma (CV 0.3) over 20,000 cells of 4 expected arrivals each
    n = 20000
    for code, shape, cv in (("gamma", {"a": 1 / 9}, 3.0), ("weibull", {"c": 0.6}, None),
                            ("gamma", {"a": 1 / 0.09}, 0.3)):
        if cv is None:
            c = shape["c"]
            cv = np.sqrt(special.gamma(1 + 2 / c) / special.gamma(1 + 1 / c) ** 2 - 1)
        cell, off = renewal_arrivals(np.full(n, 0.4), 10.0, code, shape, rng)
        counts = np.bincount(cell, minlength=n)
        # per-cell count variance is at most about cv^2 * mean + 1 for short windows
        sd = np.sqrt((cv**2 * 4 + 1) / n)
        assert abs(counts.mean() - 4.0) < 5 * sd, (code, shape, counts.mean())
        assert np.all((off >= 0) & (off < 10.0))


def test_client_shares_match_the_pool():
    pool = _pool({"a": [1.0] * 4, "b": [2.0] * 4, "c": [3.0] * 4})
    df = generate(pool, 12.0, 2400, seed=3)
    n = df.height
    share = df.group_by("client_id").len().sort("client_id")["len"].to_numpy() / n
    expected = np.array([1, 2, 3]) / 6
    # binomial sd sqrt(p(1-p)/n), inflated by the CV-1 renewal counts (variance ~ mean): 5 sd
    assert np.all(np.abs(share - expected) < 5 * np.sqrt(expected * (1 - expected) / n * 2))


def test_same_seed_same_bytes_and_other_seed_differs():
    pool = _pool({"a": [1.0] * 3, "b": [0.5] * 3}, cvs={"a": 2.0})

    def digest(seed):
        buf = io.BytesIO()
        generate(pool, 3.0, 1800, seed=seed).write_parquet(buf)
        return hashlib.sha256(buf.getvalue()).hexdigest()

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


@pytest.mark.parametrize("family, shape_or_cv", [("gamma", 2.0), ("gamma", 0.5), ("weibull", 0.7)])
def test_gap_cv_per_client_matches_pool(family, shape_or_cv):
    # one client, 1 req/s for 8 x 600 s: ~4,800 gaps. The sample CV's standard error is about
    # CV * sqrt((kurtosis_excess + 2) / (4 n)); tolerance 5 standard errors.
    pool = _pool({"a": [1.0] * 8}, cvs={"a": shape_or_cv}, families={"a": family})
    cv_pool = pool.arrivals["cv"][0]
    df = generate(pool, 1.0, 4800, seed=4)
    gaps = np.diff(df["timestamp"].to_numpy())
    cv = gaps.std() / gaps.mean()
    if family == "gamma":
        kurt = 6 * cv_pool**2
    else:
        kurt = float(stats.weibull_min(shape_or_cv).stats(moments="k"))
    se = cv_pool * np.sqrt((kurt + 2) / (4 * gaps.size))
    assert abs(cv - cv_pool) < 5 * se, (cv, cv_pool, se)


def test_fields_are_independent_and_follow_their_pmfs():
    pool = _pool({"a": [5.0] * 2})
    df = generate(pool, 5.0, 1200, seed=5)
    x, y = df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy()
    n = x.size
    # ServeGen's shared uniform makes Spearman rho = 1; independent draws give |rho| < 4/sqrt(n)
    rho = stats.spearmanr(x, y).statistic
    assert abs(rho) < 4 / np.sqrt(n), rho
    for col, (values, probs) in (("input_tokens", PMF_IN), ("output_tokens", PMF_OUT)):
        v = df[col].to_numpy()
        freq = np.array([(v == value).mean() for value in values])
        p = np.array(probs)
        assert freq.sum() == pytest.approx(1.0)
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_clients_n_drives_many_clients_from_few():
    pool = _pool({f"c{i}": [0.1 * (i + 1)] * 2 for i in range(10)})
    df = generate(pool, 20.0, 1200, clients=1000, seed=6)
    ids = df["client_id"].unique()
    assert 950 <= ids.len() <= 1000  # a few tiny clients may draw no request in 20 min
    base = ids.str.split("~").list.first()
    per_pool = base.value_counts().sort("client_id")["count"].to_numpy()
    assert np.all(per_pool >= 90) and np.all(per_pool <= 100)  # 100 copies each (some idle)
    assert abs(df.height - 24000) < 5 * np.sqrt(24000 * 2)


def test_clients_fewer_than_pool_are_distinct_and_span_the_ranking():
    pool = _pool({f"c{i}": [0.1 * (i + 1)] * 2 for i in range(10)})
    df = generate(pool, 2.0, 1200, clients=5, seed=6)
    ids = sorted(df["client_id"].unique().to_list(), key=lambda c: int(c[1:]))
    assert len(ids) == 5 and not any("~" in c for c in ids)
    ranks = sorted(int(c[1:]) for c in ids)
    # one per stratum of two ranks: {0,1}, {2,3}, ..., {8,9}
    assert [r // 2 for r in ranks] == [0, 1, 2, 3, 4]


def test_rate_table_is_followed():
    pool = _pool({"a": [1.0] * 6, "b": [1.0] * 6}, families={"a": "exponential", "b": "exponential"})
    sched = rate_table([0, 3600], [2.0, 12.0])
    df = generate(pool, sched, 3600, seed=7)
    counts = np.bincount((df["timestamp"].to_numpy() // 600).astype(int), minlength=6)
    # integral of the ramp over each 600 s window: 600 * mean rate at the window's middle
    expected = 600 * (2.0 + 10.0 * (np.arange(6) + 0.5) / 6)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), (counts, expected)


def test_rate_file_and_pool_rate(tmp_path):
    path = tmp_path / "rate.csv"
    path.write_text("time_s,rate\n0,1\n600,3\n")
    sched = read_rate_file(path)
    assert sched.at([0, 300, 900]).tolist() == [1.0, 2.0, 3.0]
    pool = _pool({"a": [1.0, 4.0], "b": [1.0, 0.0]}, families={"a": "exponential", "b": "exponential"})
    df = generate(pool, "pool", 1200, seed=8)
    counts = np.bincount((df["timestamp"].to_numpy() // 600).astype(int), minlength=2)
    expected = np.array([2.0, 4.0]) * 600
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))


def test_start_inside_span_and_missing_data_falls_back_to_aggregate():
    rates = {"a": [1.0] * 6, "b": [1.0] * 6}
    pool = make_pool(rates, pmfs={"a": {"input_tokens": ([7], [1.0]), "output_tokens": ([3], [1.0])}})
    df = generate(pool, 2.0, 600, start=1800, seed=9)
    assert df["timestamp"].min() >= 0 and df["timestamp"].max() < 600
    # client b has no data of its own: it borrows the aggregate (here client a's PMF)
    assert set(df.filter(pl.col("client_id") == "b")["input_tokens"].unique().to_list()) == {7}


def test_conversations_turns_itt_and_context():
    turns = ([1, 2, 3], [0.5, 0.3, 0.2])
    itt = ([20.0, 60.0], [0.5, 0.5])
    conv = pl.DataFrame({
        "client_id": [None] * 5,
        "quantity": ["turns"] * 3 + ["itt_s"] * 2,
        "value": [*map(float, turns[0]), *itt[0]],
        "probability": [*turns[1], *itt[1]],
    }, schema_overrides={"client_id": pl.String})
    pool = _pool({"a": [2.0] * 6}, families={"a": "exponential"}, conversations=conv)
    df = generate(pool, 2.0, 3600, seed=10)
    # the total rate is kept (starts at rate / E[turns], warm-up before the start)
    assert abs(df.height - 7200) < 5 * np.sqrt(7200 * 2)
    df = df.with_row_index("row")
    # turns per conversation among conversations started well inside the window
    firsts = df.filter((pl.col("turn") == 1) & (pl.col("timestamp") < 3600 - 130))
    sizes = df.group_by("conversation_id").len()
    k = firsts.join(sizes, on="conversation_id")["len"].to_numpy()
    p = np.array(turns[1])
    freq = np.array([(k == t).mean() for t in turns[0]])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / k.size)), freq
    # every follow-up's parent is the previous turn, ITTs come from the PMF, context accumulates
    kids = df.filter(pl.col("parent_id").is_not_null()).with_columns(pl.col("parent_id").cast(pl.UInt32))
    pairs = kids.join(df, left_on="parent_id", right_on="row", suffix="_p")
    assert pairs.height == kids.height > 0
    assert (pairs["conversation_id"] == pairs["conversation_id_p"]).all()
    assert (pairs["turn"] == pairs["turn_p"] + 1).all()
    gaps = (pairs["timestamp"] - pairs["timestamp_p"]).to_numpy()
    assert np.allclose(np.sort(np.unique(np.round(gaps, 6))), [20.0, 60.0])
    # sorted context (default): the input holds the parent's input + output; it is the
    # conversation's next-larger PMF draw, or the history itself where the draw fell below it
    h = (pairs["input_tokens_p"] + pairs["output_tokens_p"]).to_numpy()
    x = pairs["input_tokens"].to_numpy()
    assert np.all(x >= h)
    assert np.all(np.isin(x, PMF_IN[0]) | (x == h))
    # the input marginal of the workload stays the PMF's where no history forced a raise
    assert (np.isin(df["input_tokens"].to_numpy(), PMF_IN[0])).mean() > 0.7
    # additive context: the new part is a fresh draw from the input PMF
    add = generate(pool, 2.0, 1800, seed=10, context="additive").with_row_index("row")
    kids = add.filter(pl.col("parent_id").is_not_null()).with_columns(pl.col("parent_id").cast(pl.UInt32))
    pairs = kids.join(add, left_on="parent_id", right_on="row", suffix="_p")
    new = (pairs["input_tokens"] - pairs["input_tokens_p"] - pairs["output_tokens_p"]).to_numpy()
    assert set(np.unique(new).tolist()) <= set(PMF_IN[0])


def test_generated_workload_is_a_store(tmp_path):
    from servelab.analysis.store import write_store

    pool = _pool({"a": [1.0] * 2})
    df = generate(pool, 1.0, 600, seed=11)
    store = write_store(df, tmp_path / "gen")
    got = store.query("SELECT count(*) AS n, sum(input_tokens) AS s FROM requests")
    assert got["n"][0] == df.height and got["s"][0] == df["input_tokens"].sum()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rate": 1.0, "duration": 0}, "duration must be"),
        ({"rate": 1.0, "duration": 600, "start": 1000}, "outside the pool's span"),
        ({"rate": "fast", "duration": 60}, "rate as text must be 'pool'"),
        ({"rate": -1.0, "duration": 60}, "finite number > 0"),
        ({"rate": 1.0, "duration": 60, "clients": 0}, "clients must be a positive integer"),
        ({"rate": ([0, 0], [1, 2]), "duration": 60}, "strictly increasing"),
        ({"rate": 1.0, "duration": 60, "seed": "x"}, "seed must be an integer"),
        ({"rate": 1.0, "duration": 60, "context": "x"}, "context must be 'sorted' or 'additive'"),
        ({"rate": 1.0, "duration": 60, "counts": "x"}, "counts must be 'renewal' or 'poisson'"),
    ],
)
def test_bad_arguments(kwargs, match):
    pool = _pool({"a": [1.0] * 2})
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(GenerationError, match=match):
        generate(pool, **kwargs)


def test_bad_rate_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("when,how\n0,1\n")
    with pytest.raises(GenerationError, match="needs a time column"):
        read_rate_file(path)


def test_sample_runs_long_and_short_runs_follow_the_pmf(rng):
    from servelab.generator.pmf import pmf_table, sample_runs

    # group 0: 3 values; group 1: 50 values (a short run of 10 takes the search path)
    v1 = np.arange(50.0)
    table = pmf_table(np.r_[[0, 0, 0], np.ones(50, int)], np.r_[[1.0, 2.0, 5.0], v1],
                       np.r_[[0.2, 0.3, 0.5], np.full(50, 0.02)])
    group = np.r_[np.zeros(20000, int), np.ones(10, int), np.zeros(20000, int)]
    x = sample_runs(table, group, rng)
    a = x[group == 0]
    for value, p in ((1.0, 0.2), (2.0, 0.3), (5.0, 0.5)):
        assert abs((a == value).mean() - p) < 5 * np.sqrt(p * (1 - p) / a.size)
    assert set(x[group == 1].tolist()) <= set(v1.tolist())
    # the multinomial run is randomly permuted: its first and second halves agree (KS, 5 sd)
    first, second = x[:10000], x[10000:20000]
    assert abs((first == 5.0).mean() - (second == 5.0).mean()) < 5 * np.sqrt(2 * 0.25 / 10000)
    # with no runs (alternating groups) the search path gives the same distribution
    alt = np.tile([0, 1], 10000)
    y = sample_runs(table, alt, rng)[alt == 0]
    assert abs((y == 5.0).mean() - 0.5) < 5 * np.sqrt(0.25 / y.size)


@pytest.mark.skipif(__import__("importlib").util.find_spec("servelab.fitting.pool_fit") is None,
                    reason="fit-pool not available")
def test_conversations_survive_fit_pool_and_regeneration(tmp_path):
    """Workload -> store -> fit-pool -> workload: the turns distribution comes back."""
    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool

    conv = pl.DataFrame({"client_id": [None] * 5, "quantity": ["turns"] * 3 + ["itt_s"] * 2,
                         "value": [1.0, 2.0, 3.0, 20.0, 60.0], "probability": [0.5, 0.3, 0.2, 0.5, 0.5]},
                        schema_overrides={"client_id": pl.String})
    pool = _pool({"a": [2.0] * 3, "b": [1.0] * 3}, conversations=conv)
    ref = generate(pool, "pool", 1800, seed=12)
    fitted = fit_pool(write_store(ref, tmp_path / "ref"))
    again = generate(fitted, "pool", 1800, seed=13)
    assert {"conversation_id", "parent_id", "turn"} <= set(again.columns)
    # share of requests per turn number: P(T >= k) / E[T] = (1, 0.5, 0.2) / 1.7; conversations cut
    # at the ends shift a little mass, so 0.03 absolute (about 4 sd at ~5,000 requests)
    expected = np.array([1.0, 0.5, 0.2]) / 1.7
    got = again["turn"].value_counts().sort("turn")["count"].to_numpy() / again.height
    assert np.allclose(got[:3], expected, atol=0.03), got
    # mean inter-turn time 40 s (ITTs 20 / 60 s); the fitted PMF bins it, so 10 %
    rows = again.with_row_index("row")
    kids = rows.filter(pl.col("parent_id").is_not_null()).with_columns(pl.col("parent_id").cast(pl.UInt32))
    pairs = kids.join(rows, left_on="parent_id", right_on="row", suffix="_p")
    itt = (pairs["timestamp"] - pairs["timestamp_p"]).to_numpy()
    assert itt.size > 500 and abs(itt.mean() - 40.0) < 4.0


@pytest.mark.skipif(__import__("importlib").util.find_spec("servelab.fitting.pool_fit") is None,
                    reason="fit-pool not available")
def test_sorted_context_keeps_the_input_marginal_of_a_fitted_pool(tmp_path):
    """A real-like trace (follow-up input = history + fresh prompt) is fitted and regenerated: the
    sorted context keeps its input distribution, adding histories again would inflate it."""
    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool

    conv = pl.DataFrame({"client_id": [None] * 5, "quantity": ["turns"] * 3 + ["itt_s"] * 2,
                         "value": [1.0, 2.0, 3.0, 20.0, 60.0], "probability": [0.5, 0.3, 0.2, 0.5, 0.5]},
                        schema_overrides={"client_id": pl.String})
    values = np.unique(np.rint(np.random.default_rng(0).lognormal(5, 1.2, 400)))
    pmf = {"input_tokens": (values, np.full(values.size, 1 / values.size)), "output_tokens": PMF_OUT}
    pool = make_pool({"a": [2.0] * 3}, pmfs={"a": pmf}, conversations=conv)
    ref = generate(pool, "pool", 1800, seed=1, context="additive")
    fitted = fit_pool(write_store(ref, tmp_path / "ref"))
    ks = {ctx: stats.ks_2samp(ref["input_tokens"], generate(fitted, "pool", 1800, seed=2, context=ctx)
                              ["input_tokens"]).statistic for ctx in ("sorted", "additive")}
    # two samples of ~3,600: the 1 % KS critical value is about 1.63 * sqrt(2 / 3600) = 0.038
    assert ks["sorted"] < 0.08 < ks["additive"], ks


def test_arrival_law_resolves_families_shapes_and_fallbacks():
    from servelab.generator.arrivals import arrival_law

    law = arrival_law(["gamma", "weibull", None, "weibull", "exponential", None],
                      {"a": [0.25, np.nan, np.nan, np.nan, np.nan, np.nan],
                       "c": [np.nan, 0.6, np.nan, np.nan, np.nan, np.nan]},
                      [2.0, 0.0, 3.0, 0.5, 0.0, 0.0])
    names = [law.families[i] for i in law.index]
    # a family without its shape, or no family, is the Gamma with the window's CV; no CV: exponential
    assert names == ["gamma", "weibull", "gamma", "gamma", "exponential", "exponential"]
    c = 0.6
    cv_weibull = np.sqrt(special.gamma(1 + 2 / c) / special.gamma(1 + 1 / c) ** 2 - 1)
    np.testing.assert_allclose(law.cv, [2.0, cv_weibull, 3.0, 0.5, 1.0, 1.0], rtol=1e-9)
    np.testing.assert_allclose(law.shapes["a"][[0, 2, 3]], [0.25, 1 / 9, 4.0])
    # unit-mean scales: the scipy mean at that scale is 1
    assert stats.gamma(0.25, scale=law.unit_scale[0]).mean() == pytest.approx(1.0)
    assert stats.weibull_min(c, scale=law.unit_scale[1]).mean() == pytest.approx(1.0)
    with pytest.raises(GenerationError, match=r"arrival family must be one of .*; got \['pareto'\]"):
        arrival_law(["pareto"], {}, [1.0])
    with pytest.raises(GenerationError, match="shapes must be a mapping of parameter names"):
        renewal_arrivals([1.0], 1.0, "gamma", 0.5, np.random.default_rng(0))
