"""Gamma shape shift across windows: LRT against a brute-force reference, null case, positive control."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import optimize, stats

from servelab.analysis.findings import Verdict
from servelab.fitting.calibration import (
    gamma_renewal_arrivals,
    on_clock,
    poisson_arrivals,
    switching_arrivals,
    window_gap_stats,
)
from servelab.fitting.shape_tests import _lrt, gamma_shape_shift_test, log_sine_sd

DAY = 86400.0


def test_lrt_matches_a_brute_force_profile_likelihood(rng):
    shapes = [0.5, 1.0, 2.0, 0.8]
    windows = [rng.gamma(a, 3.0, 60) for a in shapes]
    sep = sum(stats.gamma.logpdf(w, *stats.gamma.fit(w, floc=0)).sum() for w in windows)

    def common(log_a):
        a = np.exp(log_a)
        return -sum(stats.gamma.logpdf(w, a, scale=w.mean() / a).sum() for w in windows)

    res = optimize.minimize_scalar(common, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10})
    ref = 2 * (sep + res.fun)
    n = np.array([w.size for w in windows], dtype=float)
    s = np.array([np.log(w.mean()) - np.log(w).mean() for w in windows])
    lrt, _ = _lrt(n, s)
    assert float(lrt) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("clock", [0.0, 1.0])
def test_stationary_poisson_does_not_hold_a_shape_shift(clock):
    # issue 13: alpha max/min 2.6 "held" gamma_shift on this trace
    t = poisson_arrivals(0.05, 2 * DAY, seed=4)
    if clock:
        t = on_clock(t, clock)
    n, mean, mlog, zeros = window_gap_stats(t, window_s=1200.0)
    r = gamma_shape_shift_test(n, mean, mlog, n_zero_gaps=zeros, replicates=99, seed=1, resolution_s=clock)
    assert r.decision is Verdict.DOES_NOT_HOLD, r.reason
    assert "parametric bootstrap (B=99" in r.method


def test_null_p_values_are_not_small_under_one_shape():
    # a bursty but stationary Gamma renewal: one shape everywhere, rate shifts allowed per window
    p = []
    for seed in range(6):
        t = gamma_renewal_arrivals(0.05, 0.4, DAY, seed=seed)
        r = gamma_shape_shift_test(*window_gap_stats(t, window_s=1200.0)[:3], replicates=99, seed=seed)
        assert r.decision is not Verdict.HOLDS
        p.append(r.p_value)
    assert np.mean(np.asarray(p) < 0.05) <= 1 / 3


def test_shape_alternating_at_the_papers_ratio_holds():
    a = 3 ** 0.5
    t = switching_arrivals(((0.05, 1 / a), (0.05, a)), 2 * DAY, seed=2)
    r = gamma_shape_shift_test(*window_gap_stats(t, window_s=1200.0)[:3], replicates=99, seed=0)
    assert r.decision is Verdict.HOLDS, r.reason
    # truth: ln alpha = +-ln(3)/2, SD 0.549; 144 windows of ~60 gaps leave a few percent of noise
    assert r.effect_value == pytest.approx(np.log(3) / 2, rel=0.15)
    assert r.effect_value > log_sine_sd(2.0)


def test_coarse_clock_and_small_traces_are_inconclusive():
    t = switching_arrivals(((0.05, 1.0), (0.15, 0.25)), DAY, seed=0)
    n, mean, mlog, zeros = window_gap_stats(on_clock(t, 1.0), window_s=1200.0)
    r = gamma_shape_shift_test(n, mean, mlog, n_zero_gaps=zeros, replicates=99)
    assert r.decision is Verdict.INCONCLUSIVE and "ties on the clock" in r.reason
    t = poisson_arrivals(2.0, 3600, seed=0)
    r = gamma_shape_shift_test(*window_gap_stats(on_clock(t, 1.0), window_s=1200.0)[:3], resolution_s=1.0)
    assert r.decision is Verdict.INCONCLUSIVE and "clock resolution" in r.reason
    r = gamma_shape_shift_test([50, 50], [1.0, 2.0], [-0.6, 0.1])
    assert r.decision is Verdict.INCONCLUSIVE and "needs 3 windows" in r.reason


def test_shape_test_input_errors():
    with pytest.raises(ValueError, match="one length"):
        gamma_shape_shift_test([1, 2], [1.0], [0.0])
    with pytest.raises(ValueError, match="replicates must be an integer >= 19"):
        gamma_shape_shift_test([20] * 3, [1.0] * 3, [-0.6] * 3, replicates=5)
    with pytest.raises(ValueError, match="n_zero_gaps must match"):
        gamma_shape_shift_test([20] * 3, [1.0] * 3, [-0.6] * 3, n_zero_gaps=[0, 0])


def test_power_draws_reused_across_levels_give_the_cold_results():
    """A test of the same windows at another level reuses the power draws (issue 16): each result
    equals the one computed with every cache empty, whatever ran before it."""
    from servelab.fitting import shape_tests

    rng = np.random.default_rng(11)
    n = rng.integers(15, 40, 12)
    x = [rng.gamma(0.8, 1.0, k) for k in n]
    mean, mlog = np.array([v.mean() for v in x]), np.array([np.log(v).mean() for v in x])
    cold = {}
    for level, multiples in ((0.05, (1.0, 1.25, 1.5, 2.0, 3.0)), (0.01, (1.0, 1.25, 1.5, 2.0, 3.0)),
                             (0.05, (1.1, 2.5))):
        shape_tests._null_replicates.cache_clear()
        shape_tests._alternative_draws.cache_clear()
        cold[(level, multiples)] = gamma_shape_shift_test(n, mean, mlog, level=level, seed=3, replicates=39,
                                                          mde_multiples=multiples)
    assert len({(t.power, t.minimum_detectable_effect) for t in cold.values()}) > 1  # they differ in what they draw
    for (level, multiples), expected in reversed(list(cold.items())):  # warm caches, another order
        assert gamma_shape_shift_test(n, mean, mlog, level=level, seed=3, replicates=39,
                                      mde_multiples=multiples) == expected


def test_max_sim_gaps_tests_a_seeded_sample_of_whole_windows():
    """Above Budget.max_sim_gaps the test is the plain test on a seeded sample of whole windows
    (windows above EXACT_CAP gaps always kept), and says so; at or above the total it is the plain test."""
    from servelab.fitting.shape_tests import EXACT_CAP, _window_sample

    rng = np.random.default_rng(5)
    n = np.concatenate([rng.integers(15, 40, 40), [EXACT_CAP + 500]])
    x = [rng.gamma(0.8, 1.0, k) for k in n]
    mean, mlog = np.array([v.mean() for v in x]), np.array([np.log(v).mean() for v in x])
    plain = gamma_shape_shift_test(n, mean, mlog, seed=3, replicates=19)
    assert gamma_shape_shift_test(n, mean, mlog, seed=3, replicates=19, max_sim_gaps=int(n[:-1].sum())) == plain
    keep = _window_sample(n, 400, 3)
    assert n.size - 1 in keep and n[keep][:-1].sum() <= 400 and n[keep][:-1].sum() + n[:-1].min() > 400 - 40
    assert np.array_equal(keep, _window_sample(n, 400, 3)) and not np.array_equal(keep, _window_sample(n, 400, 4))
    bounded = gamma_shape_shift_test(n, mean, mlog, seed=3, replicates=19, max_sim_gaps=400)
    sub = gamma_shape_shift_test(n[keep], mean[keep], mlog[keep], seed=3, replicates=19)
    assert dataclasses.replace(bounded, method=sub.method, reason=sub.reason) == sub
    assert bounded.n == keep.size and f"seeded sample of {keep.size} of {n.size} windows" in bounded.method
    with pytest.raises(ValueError, match="max_sim_gaps must be a positive integer"):
        gamma_shape_shift_test(n, mean, mlog, max_sim_gaps=0)
