"""Welch test of period means (ServeGen F4) and the exact share test (counting claims)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from servelab.analysis.findings import Verdict
from servelab.fitting.mean_shift_tests import mean_shift_test
from servelab.fitting.proportion_tests import proportion_test


def test_two_periods_reduce_to_welchs_t():
    r = mean_shift_test([400, 900], [1000.0, 1100.0], [800.0, 1200.0])
    t = stats.ttest_ind_from_stats(1000.0, 800.0, 400, 1100.0, 1200.0, 900, equal_var=False)
    assert r.value == pytest.approx(t.statistic**2, rel=1e-9)
    assert r.p_value == pytest.approx(t.pvalue, rel=1e-6)


def _periods(rng, means, n=20_000):
    # lognormal lengths (sigma 1): heavy right tail like token counts
    samples = [rng.lognormal(np.log(m) - 0.5, 1.0, n) for m in means]
    return [n] * len(means), [s.mean() for s in samples], [s.std(ddof=1) for s in samples]


def test_equal_means_do_not_hold_and_a_paper_sized_shift_holds(rng):
    null = [mean_shift_test(*_periods(rng, [800.0] * 4)).decision for _ in range(5)]
    assert Verdict.HOLDS not in null and null.count(Verdict.DOES_NOT_HOLD) >= 4
    shifted = mean_shift_test(*_periods(rng, [800.0, 920.0, 800.0, 920.0]))  # max/min 1.15
    assert shifted.decision is Verdict.HOLDS


def test_mean_shift_small_and_bad_input():
    r = mean_shift_test([30, 30], [1000.0, 1130.0], [2000.0, 2100.0])
    assert r.decision is Verdict.INCONCLUSIVE and r.power < 0.8
    assert mean_shift_test([30], [1.0], [1.0]).decision is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="n >= 2, a positive mean"):
        mean_shift_test([30, 1], [1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one length"):
        mean_shift_test([30, 30], [1.0], [1.0, 1.0])


def test_share_test_is_scipys_exact_binomial_with_exact_power():
    r = proportion_test(400, 1000, threshold=0.35, paper_share=0.45, what="single-request conversations")
    assert r.p_value == pytest.approx(stats.binomtest(400, 1000, 0.35, alternative="greater").pvalue, rel=1e-9)
    assert r.decision is Verdict.HOLDS and r.interval_low > 0.35
    k_star = next(k for k in range(1001) if stats.binom.sf(k - 1, 1000, 0.35) <= 0.05)
    assert r.power == pytest.approx(stats.binom.sf(k_star - 1, 1000, 0.45), rel=1e-9)
    assert proportion_test(300, 1000, threshold=0.35, paper_share=0.45).decision is Verdict.DOES_NOT_HOLD
    assert proportion_test(36, 100, threshold=0.35, paper_share=0.45).decision is Verdict.INCONCLUSIVE


def test_share_test_errors():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion_test(5, 3, threshold=0.3, paper_share=0.5)
    with pytest.raises(ValueError, match="threshold < paper_share"):
        proportion_test(1, 3, threshold=0.5, paper_share=0.3)


def _paired_periods(rng, in_factors, out_factors, *, n=5_000, rho=0.5):
    """Per period: correlated lognormal input and output lengths scaled by the period's factors."""
    rows, xs, ys = [], [], []
    for fi, fo in zip(in_factors, out_factors):
        z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
        x, y = np.exp(6.0 + z[:, 0]) * fi, np.exp(4.0 + z[:, 1]) * fo
        rows.append((n, x.mean(), x.std(ddof=1), y.mean(), y.std(ddof=1)))
        xs.append(x)
        ys.append(y)
    a = np.array(rows)
    r = float(np.corrcoef(np.concatenate(xs), np.concatenate(ys))[0, 1])
    return a, r


def test_ratio_shift_matches_the_delta_method_and_decides_independence(rng):
    from servelab.fitting.mean_shift_tests import ratio_shift_test

    # two periods: the test is Welch's t on the ratios with delta-method standard errors, computed here by hand
    a, r = _paired_periods(rng, [1.0, 1.13], [1.0, 0.82])
    ratio = a[:, 3] / a[:, 1]
    cx, cy = a[:, 2] / a[:, 1], a[:, 4] / a[:, 3]
    se = ratio * np.sqrt(cx**2 + cy**2 - 2 * r * cx * cy)
    t = stats.ttest_ind_from_stats(ratio[0], se[0], a[0, 0], ratio[1], se[1], a[1, 0], equal_var=False)
    apart = ratio_shift_test(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], correlation=r)
    assert apart.value == pytest.approx(t.statistic**2, rel=1e-9)
    assert apart.effect_value == pytest.approx(ratio.max() / ratio.min(), rel=1e-12)
    # ServeGen's M-mid (input +13 %, output -18 %) at 5,000 requests per period: holds
    assert apart.decision is Verdict.HOLDS and apart.power >= 0.8
    # null: both lengths shift by one factor (x1.15) in alternate periods; 8 fixed seeds, never "holds",
    # and "does not hold" (with power) in most
    null = []
    for seed in range(8):
        b, rb = _paired_periods(np.random.default_rng(seed), [1, 1.15, 1, 1.15], [1, 1.15, 1, 1.15])
        null.append(ratio_shift_test(b[:, 0], b[:, 1], b[:, 2], b[:, 3], b[:, 4], correlation=rb).decision)
    assert Verdict.HOLDS not in null and null.count(Verdict.DOES_NOT_HOLD) >= 7
    with pytest.raises(ValueError, match="correlation must be in"):
        ratio_shift_test([10, 10], [1, 1], [1, 1], [1, 1], [1, 1], correlation=1.5)
