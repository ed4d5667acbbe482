"""Length shrinkage of sparse clients (issue 17): the prior strength's fit, its test, and its use.

Simulated pools of known truth: clients alike (every client's lengths from one log-normal law:
the null, where a sparse client's own PMF is only noise) and clients of two types (log-medians 4
and 7: the positive control, where a client's own lengths are worth keeping). The
Dirichlet-multinomial likelihood is checked against scipy's ``dirichlet_multinomial`` (an
independent implementation); the generator's side is tests/generator/test_length_shrinkage_draws.py.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis.store import frame_source
from servelab.fitting.exceptions import PoolWarning
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_shrinkage import (
    K_MAX,
    OWN_WEIGHT_COLUMN,
    dm_loglik,
    fit_shrinkage,
    shrinkage_summary,
)


def _counts(rng: np.random.Generator, *, two_types: bool, n_clients: int = 300) -> pl.DataFrame:
    """Value counts ``c, d, field, v, n`` of sparse clients (1-12 requests, Poisson(4) + 1)."""
    nreq = rng.poisson(4, n_clients) + 1
    c = np.repeat(np.arange(n_clients), nreq)
    mu = np.where(rng.random(n_clients) < 0.5, 4.0, 7.0) if two_types else np.full(n_clients, 5.5)
    v = np.round(np.exp(rng.normal(mu[c], 0.8 if two_types else 1.7)))
    d = rng.integers(0, 4, c.size)
    return (pl.DataFrame({"c": c, "d": d, "field": "input_tokens", "v": v})
            .group_by("c", "d", "field", "v").agg(pl.len().alias("n")))


def test_likelihood_differences_match_scipy_dirichlet_multinomial(rng):
    x = rng.integers(0, 6, size=(7, 4))
    x[x.sum(axis=1) == 0, 0] = 1
    m = rng.dirichlet(np.ones(4), size=7)  # a prior mean per client (leave-one-out in the fit)
    n = x.sum(axis=1)
    nz = x > 0
    for k1, k2 in ((0.5, 3.0), (3.0, 40.0), (40.0, 1e4)):
        ours = dm_loglik(k1, x[nz], m[nz], n) - dm_loglik(k2, x[nz], m[nz], n)
        ref = sum(stats.dirichlet_multinomial.logpmf(x[i], k1 * m[i], n[i])
                  - stats.dirichlet_multinomial.logpmf(x[i], k2 * m[i], n[i]) for i in range(7))
        assert ours == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_alike_clients_rarely_reject_and_two_types_always_do():
    # null: 100 pools of 300 alike clients; chi2_1 at 0.01 rejected 0.75% of 400 such pools
    # (module docstring). 100 pools: P(>= 4 rejections | p = 0.01) = 0.018
    p_null = np.array([fit_shrinkage(_counts(np.random.default_rng(s), two_types=False), ["input_tokens"])[0]
                       ["input_tokens"].p_value for s in range(100)])
    assert (p_null < 0.01).sum() <= 3
    fits = [fit_shrinkage(_counts(np.random.default_rng(s), two_types=True), ["input_tokens"])
            for s in range(10)]
    for fit, weights in fits:
        f = fit["input_tokens"]
        assert f.p_value < 1e-12 and 3.0 < f.k < 60.0  # about 14 over 20 seeds
        assert f.n_clients == 300 and f.n_informative <= 300
        # the weight is n / (n + k), n the client's requests
        assert weights["weight"].is_between(0.0, 1.0).all()


def test_weights_are_requests_over_requests_plus_k():
    counts = _counts(np.random.default_rng(5), two_types=True)
    fits, weights = fit_shrinkage(counts, ["input_tokens"])
    k = fits["input_tokens"].k
    n = counts.group_by("c").agg(pl.col("n").sum()).sort("c")
    got = weights.sort("c")
    assert got["c"].to_list() == n["c"].to_list()
    np.testing.assert_allclose(got["weight"].to_numpy(), n["n"].to_numpy() / (n["n"].to_numpy() + k), rtol=1e-12)


def test_one_client_or_one_request_each_is_no_evidence():
    one = pl.DataFrame({"c": [0, 0], "d": [0, 0], "field": ["input_tokens"] * 2, "v": [5.0, 9.0], "n": [3, 2]})
    fits, weights = fit_shrinkage(one, ["input_tokens"])
    # one client: nothing to shrink toward, it keeps its own PMFs (a single-client trace is unchanged)
    assert fits["input_tokens"].k == 0.0 and np.isnan(fits["input_tokens"].p_value)
    assert weights["weight"].to_list() == [1.0]
    singles = pl.DataFrame({"c": np.arange(50), "d": 0, "field": "input_tokens", "v": np.arange(50) * 10.0, "n": 1})
    fits, _ = fit_shrinkage(singles, ["input_tokens"])
    assert fits["input_tokens"].n_informative == 0 and fits["input_tokens"].k == K_MAX
    with pytest.raises(ValueError, match="n_bins"):
        fit_shrinkage(singles, ["input_tokens"], n_bins=1)


def _trace(rng: np.random.Generator, *, two_types: bool) -> pl.DataFrame:
    n_clients = 400
    nreq = rng.poisson(3, n_clients) + 1
    nreq[:3] = 3000  # three large clients, each of one type
    c = np.repeat(np.arange(n_clients), nreq)
    mu = np.where(np.arange(n_clients) % 2 == 0, 4.0, 7.0) if two_types else np.full(n_clients, 5.5)
    v = np.maximum(np.round(np.exp(rng.normal(mu[c], 0.6 if two_types else 1.5))), 1).astype(np.int64)
    order = rng.permutation(c.size)  # requests in a random order over two days
    t = np.sort(rng.uniform(0, 2 * 86400, c.size))
    return pl.DataFrame({"timestamp": t, "client_id": [f"u{i:03d}" for i in c[order]],
                         "input_tokens": v[order], "output_tokens": np.full(c.size, 50)})


@pytest.mark.parametrize("two_types", [False, True])
def test_fit_pool_stores_the_weights_and_says_so(tmp_path, two_types):
    pool = fit_pool(frame_source(_trace(np.random.default_rng(11), two_types=two_types)), min_requests=1)
    w = pool.clients.select("client_id", pl.col(OWN_WEIGHT_COLUMN).str.json_path_match("$.input_tokens")
                            .cast(pl.Float64).alias("w"))
    shrink = pool.provenance["length_shrinkage"]["input_tokens"]
    small = w.sort("w")["w"].head(390)  # the sparse clients (1-13 requests; three have 3,000)
    if two_types:
        assert shrink["p_value"] < 1e-12 and shrink["k"] < 30  # about 8 on seeds 11-13
        assert w["w"].max() > 0.99  # the large clients keep their own PMFs
        assert small.median() > 0.2  # a sparse client keeps part of its type
    else:
        assert small.max() < 0.05  # alike: a sparse client draws (almost) only from the mean
    pool.save(tmp_path / "pool")
    from servelab.fitting.pool_format import read_pool

    assert read_pool(tmp_path / "pool").clients[OWN_WEIGHT_COLUMN].to_list() == pool.clients[OWN_WEIGHT_COLUMN].to_list()
    off = fit_pool(frame_source(_trace(np.random.default_rng(11), two_types=two_types)), min_requests=1,
                   length_shrinkage=False)
    assert OWN_WEIGHT_COLUMN not in off.clients.columns
    # ServeGen's format has no such weights: the export says it drops them; pool info shows them
    with pytest.warns(PoolWarning, match="no length shrinkage"):
        pool.to_servegen(tmp_path / "sg")
    summary = shrinkage_summary(pool)["input_tokens"]
    assert summary["clients"] == 400 and summary["k"] == shrink["k"]
    assert summary["min_weight"] <= summary["median_weight"] <= summary["max_weight"] <= 1.0
    assert shrinkage_summary(off).startswith("none")


def test_weights_decode_reads_fields_first_seen_late():
    # a field in no client's weights before row 101 (polars' default JSON schema sample is 100 rows):
    # pool info and the generator must still read it
    from servelab.fitting.pool_shrinkage import decode_own_weights

    col = pl.Series(['{"input_tokens": 0.5}'] * 150 + [None, '{"input_tokens": 0.2, "output_tokens": 0.9}'])
    decoded = decode_own_weights(col)
    assert set(decoded.struct.fields) == {"input_tokens", "output_tokens"}
    assert decoded.struct.field("output_tokens").drop_nulls().to_list() == [0.9]
