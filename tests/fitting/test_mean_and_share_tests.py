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
