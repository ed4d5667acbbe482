"""Fisher z test of a difference of correlations, with a margin."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from servelab.analysis.findings import Verdict
from servelab.fitting.correlation_tests import correlation_bound_test, correlation_difference_test


def test_z_and_p_by_hand():
    r = correlation_difference_test(0.5, 403, 0.3, 203, kind="pearson")
    z = (math.atanh(0.5) - math.atanh(0.3)) / math.sqrt(1 / 400 + 1 / 200)
    assert r.value == pytest.approx(z) and r.p_value == pytest.approx(stats.norm.sf(z))
    assert r.interval_low < 0.2 < r.interval_high


def test_tiny_difference_at_huge_n_does_not_hold():
    # issue 13: F9.correlation "held" for Spearman 0.0307 vs -0.0089
    r = correlation_difference_test(0.0307, 1_000_000, -0.0089, 1_000_000)
    assert r.significant and r.decision is Verdict.DOES_NOT_HOLD


def test_positive_control_and_null_by_simulation():
    rng = np.random.default_rng(3)
    decisions = {"null": [], "positive": []}
    for seed in range(10):
        for case, (r1, r2) in {"null": (0.3, 0.3), "positive": (0.55, 0.2)}.items():
            est = []
            for rho in (r1, r2):
                z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=500)
                est.append(float(stats.spearmanr(z[:, 0], z[:, 1]).statistic))
            decisions[case].append(correlation_difference_test(est[0], 500, est[1], 500).decision)
    assert Verdict.HOLDS not in decisions["null"]
    assert decisions["positive"].count(Verdict.HOLDS) >= 8


def test_small_samples_are_inconclusive_and_errors():
    assert correlation_difference_test(0.3, 20, 0.1, 20).decision is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="r1 must be a correlation"):
        correlation_difference_test(1.0, 100, 0.1, 100)
    with pytest.raises(ValueError, match="n2 must be an integer >= 4"):
        correlation_difference_test(0.2, 100, 0.1, 3)
    with pytest.raises(ValueError, match="kind must be one of"):
        correlation_difference_test(0.2, 100, 0.1, 100, kind="kendall")


def test_weak_correlation_is_two_one_sided_tests():
    r = correlation_bound_test(0.05, 10_000, bound=0.3, claim="weak", paper_value=0.1)
    se = 1 / math.sqrt(9997)
    p_ref = max(stats.norm.sf((math.atanh(0.05) + math.atanh(0.3)) / se),
                stats.norm.cdf((math.atanh(0.05) - math.atanh(0.3)) / se))
    assert r.p_value == pytest.approx(p_ref) and r.decision is Verdict.HOLDS and "below the practical" in r.reason
    assert correlation_bound_test(0.45, 10_000, bound=0.3, claim="weak", paper_value=0.1).decision is \
        Verdict.DOES_NOT_HOLD
    assert correlation_bound_test(0.25, 100, bound=0.3, claim="weak", paper_value=0.1).decision is Verdict.INCONCLUSIVE


def test_correlation_above_a_bound():
    assert correlation_bound_test(0.7, 1000, bound=0.5, claim="above", paper_value=0.7).decision is Verdict.HOLDS
    assert correlation_bound_test(0.45, 10_000, bound=0.5, claim="above", paper_value=0.7).decision is \
        Verdict.DOES_NOT_HOLD
    with pytest.raises(ValueError, match="claim must be 'weak' or 'above'"):
        correlation_bound_test(0.5, 100, bound=0.5, claim="strong", paper_value=0.7)
    with pytest.raises(ValueError, match="paper_value must lie on the claim's side"):
        correlation_bound_test(0.5, 100, bound=0.3, claim="weak", paper_value=0.4)
