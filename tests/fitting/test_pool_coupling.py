"""Load-length coupling (issue 17 item 3): a calibrated decision, and the generator reproduces it.

Null control and positive control on simulated clients of known truth; then a single-client trace
whose window mean output falls with the window's rate (elasticity -1): the fitted pool keeps the
coupling and the generated workload reproduces the rate-output correlation, which per-client
composition alone cannot (a single client has one PMF per data window).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from servelab.analysis.fidelity import fidelity
from servelab.analysis.store import write_store
from servelab.fitting.pool_coupling import COUPLING_LEVEL, apply_coupling, coupling_table, slope_test
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.generate import generate

W = 600.0


def _clients(rng, n_clients, n_windows, rate, elasticity, mean=300.0):
    r = np.exp(rng.normal(np.log(rate), 0.5, (n_clients, n_windows)))
    n = rng.poisson(r * W)
    c = np.repeat(np.repeat(np.arange(n_clients), n_windows), n.ravel())
    w = np.repeat(np.tile(np.arange(n_windows), n_clients), n.ravel())
    t = w * W + rng.uniform(0, W, c.size)
    mu = mean * (r.ravel() / rate) ** elasticity
    return t, c, rng.exponential(np.repeat(mu, n.ravel()))


def test_slope_test_against_statsmodels_hc3(rng):
    import statsmodels.api as sm

    x = rng.normal(0, 1, 40)
    y = 0.3 * x + rng.normal(0, 1 + np.abs(x), 40)
    fit = sm.OLS(y, sm.add_constant(x)).fit(cov_type="HC3")
    dx, dy = x - x.mean(), y - y.mean()
    beta = (dx * dy).sum() / (dx ** 2).sum()
    h = 1 / x.size + dx ** 2 / (dx ** 2).sum()
    e = dy - beta * dx
    t, p = slope_test((dx * dy).sum(), (dx ** 2).sum(), (dx ** 2 * (e / (1 - h)) ** 2).sum(), x.size)
    assert float(t) == pytest.approx(fit.tvalues[1], rel=1e-9)
    # statsmodels' robust p-value is normal; ours is Student's t with n - 2 df
    from scipy import stats
    assert float(p) == pytest.approx(2 * stats.t.sf(abs(fit.tvalues[1]), x.size - 2), rel=1e-9)


def test_null_clients_keep_no_coupling_at_the_stated_level(rng):
    # 600 null clients (lengths independent of load), 30 windows of ~120 requests: the share kept
    # must be COUPLING_LEVEL within 3 binomial SE (sqrt(0.01 * 0.99 / 600) = 0.004)
    t, c, out = _clients(rng, 600, 30, 0.2, 0.0)
    tab = coupling_table(t, c, [f"c{i}" for i in range(600)], {"output_tokens": out}, window_s=W)
    assert tab.height == 600
    assert tab["kept"].mean() <= COUPLING_LEVEL + 3 * math.sqrt(COUPLING_LEVEL * (1 - COUPLING_LEVEL) / 600)
    # one family (Benjamini-Hochberg over the pool's clients): with no client coupled, any kept
    # coupling has probability <= COUPLING_LEVEL; one test per client at 1% kept about 6 of 600
    assert (tab["p_value"] < COUPLING_LEVEL).sum() >= 1
    assert tab["kept"].sum() == 0
    # the elasticity of null clients is centred on 0 (SE of the mean ~ 0.07 / sqrt(600) = 0.003)
    assert abs(tab["elasticity"].mean()) < 0.015


def test_coupled_clients_are_found_among_many_null_ones(rng):
    # 50 coupled (elasticity -0.5) among 550 null clients, one family: the coupled are kept, and
    # the null kept are a small share of the kept (BH's expected false share is 1% of them).
    # Measured with this seed: 47 of 50 coupled and 1 null kept; at ~95% power the count of 50 has
    # an sd of ~1.5, so 45 is 3 sd below
    t1, c1, o1 = _clients(rng, 50, 30, 0.2, -0.5)
    t0, c0, o0 = _clients(rng, 550, 30, 0.2, 0.0)
    tab = coupling_table(np.r_[t1, t0], np.r_[c1, c0 + 50], [f"c{i:03d}" for i in range(600)],
                         {"output_tokens": np.r_[o1, o0]}, window_s=W)
    kept = tab.filter(pl.col("kept"))["client_id"].str.slice(1).cast(pl.Int64).to_numpy()
    assert (kept < 50).sum() >= 45
    assert (kept >= 50).sum() <= 2


def test_coupled_clients_are_kept_with_their_elasticity(rng):
    # elasticity -0.5; the measured rate log(n / W) carries Poisson noise (var 1 / 120 against the
    # true log rate's 0.25), which attenuates the slope by 0.25 / (0.25 + 1/120) = 0.968
    t, c, out = _clients(rng, 200, 30, 0.2, -0.5)
    tab = coupling_table(t, c, [f"c{i}" for i in range(200)], {"output_tokens": out}, window_s=W)
    assert tab["kept"].mean() > 0.95
    assert tab["elasticity"].mean() == pytest.approx(-0.5 * 0.968, abs=0.03)


def test_apply_coupling_keeps_each_clients_mean():
    frame = pl.DataFrame({"output_tokens": [100, 100, 100, 100], "input_tokens": [5, 5, 5, 5]})
    table = pl.DataFrame({"client_id": ["a"], "field": ["output_tokens"], "n_windows": [30], "r": [-0.9],
                          "t": [-9.0], "p_value": [1e-6], "elasticity": [-1.0], "kept": [True]})
    out = apply_coupling(table, frame, np.array(["a", "a", "a", "b"]), np.array([1.0, 2.0, 4.0, 1.0]))
    # factors rate^-1 = 1, 1/2, 1/4, normalised to mean 1: 12/7, 6/7, 3/7; client b untouched
    assert out["output_tokens"].to_list() == [171, 86, 43, 100]
    assert out["input_tokens"].to_list() == [5, 5, 5, 5]
    # a null length stays null; a request in a window of pool rate 0 is left as drawn
    frame = pl.DataFrame({"output_tokens": [100, None, 100, 100]})
    out = apply_coupling(table, frame, np.array(["a", "a", "a", "a"]), np.array([1.0, 2.0, 0.0, 4.0]))
    assert out["output_tokens"].to_list()[1:3] == [None, 100]
    assert out["output_tokens"].dtype == pl.Int64


def _single_client_trace(seed, days=2):
    rng = np.random.default_rng(seed)
    nw = int(days * 86400 / W)
    r = np.exp(rng.normal(np.log(0.5), 0.5, nw))
    n = rng.poisson(r * W)
    w = np.repeat(np.arange(nw), n)
    t = w * W + rng.uniform(0, W, n.sum())
    out = np.maximum(1, np.round(rng.exponential(400 * (r[w] / 0.5) ** -1.0)))
    inp = rng.integers(100, 2000, n.sum())  # independent of load: the null field
    o = np.argsort(t)
    return pl.DataFrame({"timestamp": t[o], "input_tokens": inp[o], "output_tokens": out[o].astype(np.int64)})


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    frame = _single_client_trace(4)
    store = write_store(frame, tmp_path_factory.mktemp("coupling") / "s")
    return frame, fit_pool(store, conversations=False)


def test_single_client_coupling_is_fitted_and_reproduced(single):
    frame, pool = single
    tab = pool.lazy("coupling").collect()
    row = {f: r for f, r in zip(tab["field"], tab.iter_rows(named=True))}
    assert row["output_tokens"]["kept"] and not row["input_tokens"]["kept"]
    # elasticity -1, attenuated by Poisson noise in the measured rate (var ~1/300 against 0.25)
    assert row["output_tokens"]["elasticity"] == pytest.approx(-1.0 * 0.25 / (0.25 + 1 / 300), abs=0.05)
    span = pool.span
    gen = generate(pool, "pool", span.end - span.start, seed=5, conversations=False)
    flat = generate(pool.replace(coupling=None), "pool", span.end - span.start, seed=5, conversations=False)
    real = frame.with_columns(pl.col("timestamp") - span.start)
    ours = fidelity(real, gen, window_s=W).metrics
    none = fidelity(real, flat, window_s=W).metrics
    ref = fidelity(real, real, window_s=W).metrics
    # 288 windows: SE of a Spearman rho ~ (1 - rho^2) / sqrt(288) <= 0.06
    assert ref["rate_output_corr"] < -0.8
    assert ours["rate_output_corr"] == pytest.approx(ref["rate_output_corr"], abs=0.1)
    assert abs(none["rate_output_corr"]) < 0.2  # without the coupling: none
    assert ours["joint_output_energy"] < none["joint_output_energy"]
    # the mean output is kept (normalised factors): within 3% (~86k requests of CV ~1.3)
    assert gen["output_tokens"].mean() == pytest.approx(frame["output_tokens"].mean(), rel=0.03)
